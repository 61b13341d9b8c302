# Finds every dependency bridle uses, all from Debian packages (see README.md).
#
# One threading runtime: oneDNN (Debian's libdnnl) is built on OpenMP, so we link
# the OpenMP build of OpenBLAS (libopenblas-openmp-dev) and write our own kernels
# with OpenMP too. Then omp_set_num_threads() governs all three and nothing spins
# against anything else.

find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(Threads REQUIRED)
find_package(ZLIB REQUIRED)
find_package(fmt CONFIG REQUIRED)
find_package(spdlog CONFIG REQUIRED)
find_package(nlohmann_json CONFIG REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
find_package(HDF5 REQUIRED COMPONENTS C)

# OpenBLAS, OpenMP flavour. Debian installs each flavour in its own directory;
# the generic libopenblas.so.0 is an alternatives link that may point to the
# pthread flavour, so we link the OpenMP one by path and keep its directory in
# the RPATH (CMake adds it because it is not a system directory).
set(_bridle_multiarch "${CMAKE_LIBRARY_ARCHITECTURE}")
find_library(BRIDLE_OPENBLAS_LIBRARY NAMES openblas
  PATHS /usr/lib/${_bridle_multiarch}/openblas-openmp NO_DEFAULT_PATH)
find_path(BRIDLE_OPENBLAS_INCLUDE_DIR NAMES cblas.h
  PATHS /usr/include/${_bridle_multiarch}/openblas-openmp NO_DEFAULT_PATH)
if(NOT BRIDLE_OPENBLAS_LIBRARY OR NOT BRIDLE_OPENBLAS_INCLUDE_DIR)
  message(FATAL_ERROR
    "bridle needs the OpenMP build of OpenBLAS: apt-get install libopenblas-openmp-dev")
endif()
add_library(bridle_openblas INTERFACE)
target_link_libraries(bridle_openblas INTERFACE "${BRIDLE_OPENBLAS_LIBRARY}")
target_include_directories(bridle_openblas SYSTEM INTERFACE "${BRIDLE_OPENBLAS_INCLUDE_DIR}")
message(STATUS "bridle: OpenBLAS (OpenMP) ${BRIDLE_OPENBLAS_LIBRARY}")

# oneDNN. Debian's dnnl-config.cmake insists on OpenCL (its GPU runtime), which a
# CPU build does not need, so we find the library and header directly.
find_library(BRIDLE_DNNL_LIBRARY NAMES dnnl)
find_path(BRIDLE_DNNL_INCLUDE_DIR NAMES oneapi/dnnl/dnnl.hpp)
if(NOT BRIDLE_DNNL_LIBRARY OR NOT BRIDLE_DNNL_INCLUDE_DIR)
  message(FATAL_ERROR "bridle needs oneDNN: apt-get install libdnnl-dev")
endif()
add_library(bridle_dnnl INTERFACE)
target_link_libraries(bridle_dnnl INTERFACE "${BRIDLE_DNNL_LIBRARY}")
target_include_directories(bridle_dnnl SYSTEM INTERFACE "${BRIDLE_DNNL_INCLUDE_DIR}")
