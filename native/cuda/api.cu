// Version, status text and device query of the C API (igs_cuda.cuh).
#include "launch.cuh"

static_assert(igs::kMaxK == 32, "update the IGS_CUDA_ERR_K message");

extern "C" {

IGS_CUDA_API int igs_cuda_abi_version(void) {
    return IGS_CUDA_ABI_VERSION;
}

IGS_CUDA_API const char* igs_cuda_status_string(int status) {
    switch (status) {
        case IGS_CUDA_OK:
            return "ok";
        case IGS_CUDA_ERR_ARGUMENT:
            return "invalid argument (negative size, null pointer, channels < 1 or eps < 0)";
        case IGS_CUDA_ERR_TILE:
            return "tile size must be in [1, 32] for the CUDA renderer";
        case IGS_CUDA_ERR_K:
            return "k must be in [1, 32]";
        case IGS_CUDA_ERR_TOO_MANY:
            return "more than 2^31 - 1 Gaussians or (tile, Gaussian) pairs";
        case IGS_CUDA_ERR_WORKSPACE:
            return "workspace smaller than the size the *_workspace query returned";
        default:
            break;
    }
    if (status > 0) return cudaGetErrorString(static_cast<cudaError_t>(status));
    return "unknown igs_cuda status";
}

IGS_CUDA_API int igs_cuda_device_count(void) {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    return e == cudaSuccess ? count : -static_cast<int>(e);
}

IGS_CUDA_API int igs_cuda_set_device(int device) {
    if (device < 0) return IGS_CUDA_ERR_ARGUMENT;
    return igs::cuda::status_of(cudaSetDevice(device));
}

}  // extern "C"
