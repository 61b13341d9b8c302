# Data-parallel training over MPI (lib/distributed): BRIDLE_MPI=AUTO (the default)
# builds the MPI process group when an MPI library is found (Debian:
# libopenmpi-dev), ON requires it, OFF leaves it out. Without it, everything in
# lib/distributed still builds, and asking for a process group says that this
# build has no MPI. When built, BRIDLE_WITH_MPI is TRUE here and mpirun is
# BRIDLE_MPIEXEC, for the tests that launch ranks.
set(BRIDLE_MPI "AUTO" CACHE STRING "Build the MPI process group: AUTO (when MPI is found), ON or OFF")
set_property(CACHE BRIDLE_MPI PROPERTY STRINGS AUTO ON OFF)

set(BRIDLE_WITH_MPI FALSE)
if(BRIDLE_MPI STREQUAL "ON")
  find_package(MPI REQUIRED COMPONENTS C)
  set(BRIDLE_WITH_MPI TRUE)
elseif(BRIDLE_MPI STREQUAL "AUTO")
  find_package(MPI QUIET COMPONENTS C)
  if(MPI_C_FOUND)
    set(BRIDLE_WITH_MPI TRUE)
  endif()
elseif(NOT BRIDLE_MPI STREQUAL "OFF")
  message(FATAL_ERROR "BRIDLE_MPI must be AUTO, ON or OFF, got '${BRIDLE_MPI}'")
endif()

if(BRIDLE_WITH_MPI)
  # The C API only: without these, <mpi.h> in a C++ file drags in the MPI-2 C++
  # bindings (removed from the standard in MPI-3), which need libmpi_cxx.
  set_property(TARGET MPI::MPI_C APPEND PROPERTY
    INTERFACE_COMPILE_DEFINITIONS OMPI_SKIP_MPICXX=1 MPICH_SKIP_MPICXX=1)
  set(BRIDLE_MPIEXEC "${MPIEXEC_EXECUTABLE}")
  message(STATUS "bridle: MPI process group on (${MPI_C_LIBRARIES}; launcher ${BRIDLE_MPIEXEC})")
else()
  message(STATUS "bridle: MPI process group off (no MPI found: apt-get install libopenmpi-dev openmpi-bin)")
endif()
