// The part of the CUDA runtime API that native/cuda calls, for the CPU emulator (igs_emu.h).
// Device memory is host memory; streams are accepted and ignored, since every launch runs to
// completion before it returns.
#pragma once

#include "igs_emu.h"

enum cudaError_t {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorLaunchFailure = 719,
};

typedef struct CUstream_st* cudaStream_t;

cudaError_t cudaGetLastError();
// For cudaErrorLaunchFailure: what the emulator caught, naming block, thread and operation.
const char* cudaGetErrorString(cudaError_t error);
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaSetDevice(int device);
