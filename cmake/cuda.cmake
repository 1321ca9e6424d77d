# The CUDA backend (src/backend/cuda) is built when DSINFER_CUDA is on, which it is by default
# wherever a CUDA compiler is found (CMAKE_CUDA_COMPILER, CUDACXX, nvcc on the PATH, or the
# toolkit's usual /usr/local/cuda). Building needs no GPU; running its tests does (label `cuda`).
include(CheckLanguage)
if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
  set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc CACHE FILEPATH "CUDA compiler")
endif()
check_language(CUDA)
set(dsi_cuda_default OFF)
if(CMAKE_CUDA_COMPILER)
  set(dsi_cuda_default ON)
endif()
option(DSINFER_CUDA "Build the CUDA backend (needs the CUDA toolkit, not a GPU)" ${dsi_cuda_default})

if(DSINFER_CUDA)
  if(NOT CMAKE_CUDA_COMPILER)
    message(FATAL_ERROR "DSINFER_CUDA is on but no CUDA compiler was found: set CMAKE_CUDA_COMPILER")
  endif()
  # sm_90a, the Hopper-specific target: wgmma and setmaxnreg need it, and CMake writes it as
  # -gencode (--generate-code=arch=compute_90a,code=[sm_90a]), which nvcc 13.0 assembles cleanly
  # where the -arch=sm_90a shorthand also runs a plain sm_90 pass that rejects those instructions.
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 90a-real)
  endif()
  # cudart is linked statically (the binary runs on any driver new enough, with no libcudart
  # beside it); cuBLASLt stays a shared library (hundreds of MB; the GPU machines have it).
  set(CMAKE_CUDA_RUNTIME_LIBRARY Static)
  enable_language(CUDA)
  # C++20 as for the host code. CMake 3.25 (Debian 12) predates nvcc 13 and does not know its
  # C++20 flag, so it refuses CUDA sources in C++20 targets ("requires the language dialect
  # CUDA20"); tell it the flag nvcc has taken since 12.0.
  if(NOT CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
    set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
    set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
    list(APPEND CMAKE_CUDA_COMPILE_FEATURES cuda_std_20)
  endif()
  set(CMAKE_CUDA_STANDARD 20)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  set(CMAKE_CUDA_EXTENSIONS OFF)
  find_package(CUDAToolkit REQUIRED)
  message(STATUS "CUDA backend: nvcc ${CMAKE_CUDA_COMPILER_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES}")

  # CUTLASS 4.2's headers (PyPI nvidia-cutlass==4.2.0.0, which scripts/setup.sh installs into
  # .venv) for the experts' grouped GEMM (src/backend/cuda/expert_gemm.cu). Without them that
  # file builds empty and prefill keeps one cuBLASLt product per expert.
  set(DSINFER_CUTLASS_DIR "" CACHE PATH "CUTLASS source tree (its include/ and tools/util/include/)")
  if(NOT DSINFER_CUTLASS_DIR)
    file(GLOB dsi_cutlass_found "${PROJECT_SOURCE_DIR}/.venv/lib/python3*/site-packages/cutlass_library/source")
    if(dsi_cutlass_found)
      list(GET dsi_cutlass_found 0 dsi_cutlass_first)
      set(DSINFER_CUTLASS_DIR "${dsi_cutlass_first}" CACHE PATH "CUTLASS source tree" FORCE)
    endif()
  endif()
  if(DSINFER_CUTLASS_DIR AND EXISTS "${DSINFER_CUTLASS_DIR}/include/cutlass/cutlass.h")
    message(STATUS "CUTLASS: ${DSINFER_CUTLASS_DIR}")
  else()
    message(STATUS "CUTLASS: not found (scripts/setup.sh installs it): the experts' grouped GEMM is left out")
    set(DSINFER_CUTLASS_DIR "")
  endif()
endif()
