# cuDNN for the CUDA backend's convolution, pooling and batch norm (ops/conv.cu,
# pool.cu, batch_norm.cu). Looked for only when the CUDA backend is built, in
# the toolkit first (cuDNN is often installed into it) and then wherever
# CUDNN_ROOT points. When it is found, BRIDLE_WITH_CUDNN is TRUE here and the
# library defines BRIDLE_WITH_CUDNN=1 for its own sources; without it the CUDA
# backend still builds and those ops throw a clear error on CUDA tensors.
#
# Linked dynamically against the front library only (libcudnn.so.9): it loads
# its sub-libraries (libcudnn_cnn, _ops, _engines_*, ...) itself at run time, so
# they must sit beside it or on LD_LIBRARY_PATH on the GPU machine.
set(BRIDLE_WITH_CUDNN FALSE)
if(BRIDLE_WITH_CUDA)
  set(CUDNN_ROOT "" CACHE PATH "Where cuDNN is installed, if not in the CUDA toolkit")
  set(_bridle_cudnn_hints ${CUDNN_ROOT} $ENV{CUDNN_ROOT} ${CUDAToolkit_LIBRARY_ROOT}
      ${CUDAToolkit_TARGET_DIR})
  find_path(BRIDLE_CUDNN_INCLUDE_DIR cudnn.h
            HINTS ${_bridle_cudnn_hints} ${CUDAToolkit_INCLUDE_DIRS}
            PATH_SUFFIXES include)
  find_library(BRIDLE_CUDNN_LIBRARY NAMES cudnn
               HINTS ${_bridle_cudnn_hints} ${CUDAToolkit_LIBRARY_DIR}
               PATH_SUFFIXES lib64 lib lib/x64)
  if(BRIDLE_CUDNN_INCLUDE_DIR AND BRIDLE_CUDNN_LIBRARY)
    set(BRIDLE_WITH_CUDNN TRUE)
    add_library(bridle_cudnn SHARED IMPORTED)
    set_target_properties(bridle_cudnn PROPERTIES
      IMPORTED_LOCATION ${BRIDLE_CUDNN_LIBRARY}
      INTERFACE_INCLUDE_DIRECTORIES ${BRIDLE_CUDNN_INCLUDE_DIR})
    message(STATUS "bridle: cuDNN ${BRIDLE_CUDNN_LIBRARY} (conv2d, pooling, batch_norm on CUDA)")
  else()
    message(STATUS "bridle: cuDNN not found (set CUDNN_ROOT): conv2d, pooling and batch_norm "
                   "stay CPU-only")
  endif()
endif()
