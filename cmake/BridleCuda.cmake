# The CUDA backend: BRIDLE_CUDA=AUTO (the default) builds it when nvcc is found,
# ON requires it, OFF leaves it out. When it is built, BRIDLE_WITH_CUDA is TRUE
# here and defined for every user of the library (core/dtype.h reads it).
#
# Kernels target Hopper (sm_90: H100, H200). CMAKE_CUDA_ARCHITECTURES 90 is
# "90-real;90-virtual": sm_90 machine code plus compute_90 PTX, so a later GPU can
# still JIT-compile the PTX. The runtime is linked statically (cudart_static), so
# binaries need only the driver and cuBLAS on the GPU machine.
set(BRIDLE_CUDA "AUTO" CACHE STRING "Build the CUDA backend: AUTO (when nvcc is found), ON or OFF")
set_property(CACHE BRIDLE_CUDA PROPERTY STRINGS AUTO ON OFF)

set(BRIDLE_WITH_CUDA FALSE)
if(BRIDLE_CUDA STREQUAL "ON")
  set(BRIDLE_WITH_CUDA TRUE)
elseif(BRIDLE_CUDA STREQUAL "AUTO")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(BRIDLE_WITH_CUDA TRUE)
  endif()
elseif(NOT BRIDLE_CUDA STREQUAL "OFF")
  message(FATAL_ERROR "BRIDLE_CUDA must be AUTO, ON or OFF, got '${BRIDLE_CUDA}'")
endif()

if(BRIDLE_WITH_CUDA)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 90)
  endif()
  enable_language(CUDA)
  # The .cu files include bridle's C++20 headers, and CMake compiles CUDA at the
  # C++ standard (20) when no CUDA one is set. CMake 3.25 does not know nvcc's
  # C++20 flag yet (3.26 does); nvcc 12+ takes -std=c++20.
  if(NOT DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
    set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
    set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
  endif()
  set(CMAKE_CUDA_STANDARD 20)
  set(CMAKE_CUDA_EXTENSIONS OFF)
  find_package(CUDAToolkit REQUIRED)
  message(STATUS "bridle: CUDA backend ON (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, "
                 "architectures ${CMAKE_CUDA_ARCHITECTURES})")
else()
  message(STATUS "bridle: CUDA backend OFF (BRIDLE_CUDA=${BRIDLE_CUDA})")
endif()
