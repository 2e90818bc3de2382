// Loads the CUDA driver, NVRTC, cuBLAS, NCCL and NVML with dlopen (see include/CCuda.h for why).
#define _GNU_SOURCE
#include "CCuda.h"
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>

mlra_cuda_api mlra_cuda;

// The versioned symbol first (cuda.h maps e.g. cuMemAlloc to cuMemAlloc_v2; every
// _v2 resolved here has the signature declared in CCuda.h), then the plain one.
static void *resolve(void *lib, const char *name) {
    char v2[96];
    snprintf(v2, sizeof v2, "%s_v2", name);
    void *p = dlsym(lib, v2);
    return p ? p : dlsym(lib, name);
}

#define RESOLVE(lib, field) do { \
        *(void **)&mlra_cuda.field = resolve(lib, #field); \
        if (!mlra_cuda.field) { snprintf(err, errlen, "%s lacks %s (driver too old?)", libname, #field); return 1; } \
    } while (0)

int mlra_cuda_load_driver(char *err, size_t errlen) {
    if (mlra_cuda.cuInit) return 0;
    const char *libname = "libcuda.so.1";
    void *lib = dlopen(libname, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(err, errlen, "no NVIDIA driver: cannot open %s (%s)", libname, dlerror());
        return 1;
    }
    RESOLVE(lib, cuInit); RESOLVE(lib, cuDriverGetVersion); RESOLVE(lib, cuGetErrorString); RESOLVE(lib, cuGetErrorName);
    RESOLVE(lib, cuDeviceGetCount); RESOLVE(lib, cuDeviceGet); RESOLVE(lib, cuDeviceGetName); RESOLVE(lib, cuDeviceGetUuid);
    RESOLVE(lib, cuDeviceGetPCIBusId); RESOLVE(lib, cuDeviceGetAttribute); RESOLVE(lib, cuDeviceTotalMem);
    RESOLVE(lib, cuDevicePrimaryCtxRetain); RESOLVE(lib, cuCtxSetCurrent); RESOLVE(lib, cuCtxSynchronize);
    RESOLVE(lib, cuMemGetInfo); RESOLVE(lib, cuMemAlloc); RESOLVE(lib, cuMemFree); RESOLVE(lib, cuMemcpyHtoD);
    RESOLVE(lib, cuMemAllocHost); RESOLVE(lib, cuMemFreeHost);
    RESOLVE(lib, cuMemcpyDtoH); RESOLVE(lib, cuMemcpyDtoD); RESOLVE(lib, cuMemsetD8); RESOLVE(lib, cuModuleLoadData);
    RESOLVE(lib, cuMemcpyHtoDAsync); RESOLVE(lib, cuMemcpyDtoHAsync); RESOLVE(lib, cuMemsetD8Async); RESOLVE(lib, cuEventDestroy);
    RESOLVE(lib, cuModuleUnload); RESOLVE(lib, cuModuleGetFunction); RESOLVE(lib, cuFuncSetAttribute);
    RESOLVE(lib, cuFuncGetAttribute); RESOLVE(lib, cuLaunchKernel); RESOLVE(lib, cuStreamCreate);
    RESOLVE(lib, cuStreamSynchronize); RESOLVE(lib, cuStreamBeginCapture); RESOLVE(lib, cuStreamEndCapture);
    RESOLVE(lib, cuGraphInstantiateWithFlags); RESOLVE(lib, cuGraphLaunch); RESOLVE(lib, cuGraphExecDestroy);
    RESOLVE(lib, cuGraphDestroy); RESOLVE(lib, cuEventCreate); RESOLVE(lib, cuEventRecord);
    RESOLVE(lib, cuEventSynchronize); RESOLVE(lib, cuEventElapsedTime);
    *(void **)&mlra_cuda.cuLaunchKernelEx = dlsym(lib, "cuLaunchKernelEx");  // optional (CUDA 11.8+)
    return 0;
}

// cuda.h's CUlaunchAttribute and CUlaunchConfig, as laid out there (an attribute: the id, 4
// bytes of padding, a 64-byte value union).
typedef struct { int id; char pad[4]; union { char bytes[64]; int programmaticStreamSerializationAllowed; } value; } mlra_launch_attribute;
typedef struct {
    unsigned gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes;
    CUstream hStream;
    mlra_launch_attribute *attrs;
    unsigned numAttrs;
} mlra_launch_config;
_Static_assert(sizeof(mlra_launch_attribute) == 72, "CUlaunchAttribute is 72 bytes");
_Static_assert(sizeof(mlra_launch_config) == 56 && offsetof(mlra_launch_config, hStream) == 32, "CUlaunchConfig's layout");
enum { MLRA_CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION = 6 };

CUresult mlra_cuda_launch_dependent(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned sharedBytes,
                                    CUstream stream, void **params) {
    if (!mlra_cuda.cuLaunchKernelEx) return 801;
    mlra_launch_attribute attr;
    memset(&attr, 0, sizeof attr);
    attr.id = MLRA_CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
    attr.value.programmaticStreamSerializationAllowed = 1;
    mlra_launch_config config = {gx, gy, gz, bx, 1, 1, sharedBytes, stream, &attr, 1};
    return mlra_cuda.cuLaunchKernelEx(&config, f, params, NULL);
}

static int is_dir(const char *p) { struct stat st; return stat(p, &st) == 0 && S_ISDIR(st.st_mode); }

// NVRTC loads its builtins (libnvrtc-builtins.so.M.m) by soname at compile time; a
// copy already loaded with that soname is found without LD_LIBRARY_PATH.
static void preload_builtins(const char *nvrtc_path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", nvrtc_path);
    char *slash = strrchr(dir, '/');
    if (!slash) return;
    *slash = 0;
    static const char *names[] = {"libnvrtc-builtins.so.13.0", "libnvrtc-builtins.so.12.9", "libnvrtc-builtins.so.12.8",
                                  "libnvrtc-builtins.so.12.6", "libnvrtc-builtins.so.12.4", "libnvrtc-builtins.so"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        if (dlopen(p, RTLD_NOW | RTLD_GLOBAL)) return;
    }
}

// Opens the first of `sonames` found: in `path` (a file, or a folder holding them) when
// given, else on the library path. NULL, with the candidates tried listed in `tried`.
static void *open_first(const char *path, const char *const *sonames, size_t count, char *candidate, size_t candlen,
                        char *tried, size_t triedlen) {
    void *lib = NULL;
    tried[0] = 0;
    for (size_t i = 0; i < count && !lib; i++) {
        if (path && *path) {
            if (is_dir(path)) snprintf(candidate, candlen, "%s/%s", path, sonames[i]);
            else if (i == 0) snprintf(candidate, candlen, "%s", path);
            else break;
        } else {
            snprintf(candidate, candlen, "%s", sonames[i]);
        }
        lib = dlopen(candidate, RTLD_NOW | RTLD_LOCAL);
        if (!lib) {
            size_t n = strlen(tried);
            snprintf(tried + n, triedlen - n, "%s%s", n ? ", " : "", candidate);
        }
    }
    return lib;
}

// The one sentence for a library that was not found: what was tried, and how to point at it.
static void not_found(char *err, size_t errlen, const char *what, const char *tried, const char *path, const char *variable,
                      const char *soname, const char *wheel) {
    snprintf(err, errlen, "%s not found (tried %s%s); point %s at %s or its folder (a CUDA toolkit's lib64, or pip's %s)",
             what, tried, (path && *path) ? "" : " on the library path", variable, soname, wheel);
}

// The file a handle was opened from (its folder holds NVRTC's builtins), else `fallback`.
static void opened_path(void *lib, const char *fallback, char *opened, size_t openedlen) {
    struct link_map *map = NULL;
    if (dlinfo(lib, RTLD_DI_LINKMAP, &map) == 0 && map && map->l_name && *map->l_name) snprintf(opened, openedlen, "%s", map->l_name);
    else snprintf(opened, openedlen, "%s", fallback);
}

int mlra_cuda_load_nvrtc(const char *path, char *opened, size_t openedlen, char *err, size_t errlen) {
    if (mlra_cuda.nvrtcCompileProgram) return 0;
    static const char *sonames[] = {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"};
    char tried[2048], candidate[4200];
    void *lib = open_first(path, sonames, sizeof sonames / sizeof *sonames, candidate, sizeof candidate, tried, sizeof tried);
    if (!lib) {
        not_found(err, errlen, "NVRTC", tried, path, "MLRA_NVRTC", "libnvrtc.so.13",
                  "nvidia-cuda-nvrtc: site-packages/nvidia/cu13/lib");
        return 1;
    }
    opened_path(lib, candidate, opened, openedlen);
    preload_builtins(opened);
    const char *libname = opened;
    RESOLVE(lib, nvrtcVersion); RESOLVE(lib, nvrtcGetErrorString); RESOLVE(lib, nvrtcCreateProgram);
    RESOLVE(lib, nvrtcCompileProgram); RESOLVE(lib, nvrtcGetProgramLogSize); RESOLVE(lib, nvrtcGetProgramLog);
    RESOLVE(lib, nvrtcGetCUBINSize); RESOLVE(lib, nvrtcGetCUBIN); RESOLVE(lib, nvrtcDestroyProgram);
    return 0;
}

int mlra_cuda_load_cublas(const char *path, char *opened, size_t openedlen, char *err, size_t errlen) {
    if (mlra_cuda.cublasSgemm) return 0;
    static const char *sonames[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so"};
    char tried[2048], candidate[4200];
    // cuBLAS needs cuBLASLt, which a folder outside the library path holds beside it.
    static const char *lt[] = {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"};
    if (path && *path) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (!is_dir(path) && slash) *slash = 0;
        for (size_t i = 0; i < sizeof lt / sizeof *lt; i++) {
            snprintf(candidate, sizeof candidate, "%s/%s", dir, lt[i]);
            if (dlopen(candidate, RTLD_NOW | RTLD_GLOBAL)) break;
        }
    }
    void *lib = open_first(path, sonames, sizeof sonames / sizeof *sonames, candidate, sizeof candidate, tried, sizeof tried);
    if (!lib) {
        not_found(err, errlen, "cuBLAS", tried, path, "MLRA_CUBLAS", "libcublas.so.13",
                  "nvidia-cublas: site-packages/nvidia/cu13/lib");
        return 1;
    }
    opened_path(lib, candidate, opened, openedlen);
    const char *libname = opened;
    RESOLVE(lib, cublasCreate); RESOLVE(lib, cublasDestroy); RESOLVE(lib, cublasGetVersion); RESOLVE(lib, cublasSetStream);
    RESOLVE(lib, cublasSetMathMode); RESOLVE(lib, cublasSgemm); RESOLVE(lib, cublasSgemmStridedBatched);
    RESOLVE(lib, cublasGemmEx); RESOLVE(lib, cublasGemmStridedBatchedEx);
    return 0;
}

int mlra_cuda_load_nccl(const char *path, char *opened, size_t openedlen, char *err, size_t errlen) {
    if (mlra_cuda.ncclAllReduce) return 0;
    static const char *sonames[] = {"libnccl.so.2", "libnccl.so"};
    char tried[2048], candidate[4200];
    void *lib = open_first(path, sonames, sizeof sonames / sizeof *sonames, candidate, sizeof candidate, tried, sizeof tried);
    if (!lib) {
        not_found(err, errlen, "NCCL", tried, path, "MLRA_NCCL", "libnccl.so.2", "nvidia-nccl-cu13: site-packages/nvidia/nccl/lib");
        return 1;
    }
    opened_path(lib, candidate, opened, openedlen);
    const char *libname = opened;
    RESOLVE(lib, ncclGetVersion); RESOLVE(lib, ncclGetErrorString); RESOLVE(lib, ncclGetUniqueId);
    RESOLVE(lib, ncclCommInitRank); RESOLVE(lib, ncclCommDestroy); RESOLVE(lib, ncclAllReduce);
    return 0;
}

ncclResult_t mlra_nccl_comm_init_rank(ncclComm_t *comm, int nranks, const void *unique_id, int rank) {
    ncclUniqueId id;
    memcpy(&id, unique_id, sizeof id);
    return mlra_cuda.ncclCommInitRank(comm, nranks, id, rank);
}

int mlra_cuda_load_nvml(void) {
    if (mlra_cuda.nvmlDeviceGetClockInfo) return 0;
    void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return 1;
    *(void **)&mlra_cuda.nvmlInit = resolve(lib, "nvmlInit");
    *(void **)&mlra_cuda.nvmlDeviceGetHandleByPciBusId = resolve(lib, "nvmlDeviceGetHandleByPciBusId");
    *(void **)&mlra_cuda.nvmlDeviceGetClockInfo = dlsym(lib, "nvmlDeviceGetClockInfo");
    *(void **)&mlra_cuda.nvmlSystemGetDriverVersion = dlsym(lib, "nvmlSystemGetDriverVersion");
    if (!mlra_cuda.nvmlInit || !mlra_cuda.nvmlDeviceGetHandleByPciBusId || !mlra_cuda.nvmlDeviceGetClockInfo
        || mlra_cuda.nvmlInit() != 0) {
        mlra_cuda.nvmlDeviceGetClockInfo = NULL;
        return 1;
    }
    return 0;
}
