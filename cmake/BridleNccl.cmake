# Data-parallel training on GPUs (lib/distributed/nccl_process_group.cpp):
# BRIDLE_NCCL=AUTO (the default) builds the NCCL process group when the CUDA
# backend and the MPI process group are both built and nccl.h and libnccl are
# found; ON requires all of that, OFF leaves it out. MPI is needed because it
# launches the ranks and hands rank 0's ncclUniqueId to the others.
#
# libnccl is linked dynamically: it is large, and the GPU machine provides
# libnccl.so.2 (from its CUDA toolkit, or PyTorch's nvidia-nccl package: point
# LD_LIBRARY_PATH at it). When built, BRIDLE_WITH_NCCL is TRUE here and defined
# for every user of the library.
set(BRIDLE_NCCL "AUTO" CACHE STRING "Build the NCCL process group: AUTO (when CUDA, MPI and NCCL are found), ON or OFF")
set_property(CACHE BRIDLE_NCCL PROPERTY STRINGS AUTO ON OFF)
if(NOT BRIDLE_NCCL MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "BRIDLE_NCCL must be AUTO, ON or OFF, got '${BRIDLE_NCCL}'")
endif()

set(BRIDLE_WITH_NCCL FALSE)
set(_bridle_nccl_missing "")
if(NOT BRIDLE_NCCL STREQUAL "OFF")
  if(NOT BRIDLE_WITH_CUDA)
    set(_bridle_nccl_missing "the CUDA backend is off")
  elseif(NOT BRIDLE_WITH_MPI)
    set(_bridle_nccl_missing "the MPI process group is off")
  else()
    # The toolkit's own directories first (NCCL often ships inside it), then the
    # usual system places (Debian's libnccl-dev).
    set(_bridle_cuda_root "${CUDAToolkit_LIBRARY_ROOT}")
    if(NOT _bridle_cuda_root)
      get_filename_component(_bridle_cuda_root "${CUDAToolkit_BIN_DIR}" DIRECTORY)
    endif()
    find_path(BRIDLE_NCCL_INCLUDE_DIR nccl.h
      HINTS ${CUDAToolkit_INCLUDE_DIRS} ${_bridle_cuda_root}/include ENV NCCL_HOME
      PATH_SUFFIXES include)
    find_library(BRIDLE_NCCL_LIBRARY NAMES nccl libnccl.so.2
      HINTS ${CUDAToolkit_LIBRARY_DIR} ${_bridle_cuda_root}/lib ${_bridle_cuda_root}/lib64 ENV NCCL_HOME
      PATH_SUFFIXES lib lib64)
    if(BRIDLE_NCCL_INCLUDE_DIR AND BRIDLE_NCCL_LIBRARY)
      set(BRIDLE_WITH_NCCL TRUE)
    else()
      set(_bridle_nccl_missing "nccl.h or libnccl not found (set NCCL_HOME)")
    endif()
  endif()
endif()

if(BRIDLE_WITH_NCCL)
  add_library(bridle_nccl INTERFACE)
  target_include_directories(bridle_nccl SYSTEM INTERFACE ${BRIDLE_NCCL_INCLUDE_DIR})
  target_link_libraries(bridle_nccl INTERFACE ${BRIDLE_NCCL_LIBRARY})
  message(STATUS "bridle: NCCL process group on (${BRIDLE_NCCL_LIBRARY})")
elseif(BRIDLE_NCCL STREQUAL "ON")
  message(FATAL_ERROR "BRIDLE_NCCL=ON, but ${_bridle_nccl_missing}")
else()
  if(_bridle_nccl_missing)
    set(_bridle_nccl_missing ": ${_bridle_nccl_missing}")
  endif()
  message(STATUS "bridle: NCCL process group off (BRIDLE_NCCL=${BRIDLE_NCCL}${_bridle_nccl_missing})")
endif()
