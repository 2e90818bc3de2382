// CUDA driver API, NVRTC, cuBLAS, NCCL and NVML entry points, declared here and loaded at run time
// with dlopen, so that `mlra` builds with no CUDA headers or libraries (CI has none)
// and one binary runs on CPU nodes and GPU nodes alike. Only the types and entry
// points the harness calls are declared; the ABI is CUDA's (cuda.h, nvrtc.h, cublas_api.h, nccl.h, nvml.h),
// using the versioned symbols (_v2) that cuda.h maps its names to.
#ifndef MLRA_CCUDA_H
#define MLRA_CCUDA_H
#include <stddef.h>
#include <stdint.h>

typedef int CUresult;            // CUDA_SUCCESS = 0
typedef int CUdevice;
typedef uint64_t CUdeviceptr;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef struct CUevent_st *CUevent;
typedef struct CUgraph_st *CUgraph;
typedef struct CUgraphExec_st *CUgraphExec;
typedef struct { char bytes[16]; } CUuuid;
typedef int nvrtcResult;         // NVRTC_SUCCESS = 0
typedef struct _nvrtcProgram *nvrtcProgram;
typedef int nvmlReturn_t;        // NVML_SUCCESS = 0
typedef struct nvmlDevice_st *nvmlDevice_t;
typedef int cublasStatus_t;      // CUBLAS_STATUS_SUCCESS = 0
typedef struct cublasContext *cublasHandle_t;
typedef int ncclResult_t;        // ncclSuccess = 0
typedef struct ncclComm *ncclComm_t;
// nccl.h's ncclUniqueId: NCCL_UNIQUE_ID_BYTES opaque bytes, passed by value to ncclCommInitRank.
enum { MLRA_NCCL_UNIQUE_ID_BYTES = 128 };
typedef struct { char internal[MLRA_NCCL_UNIQUE_ID_BYTES]; } ncclUniqueId;
// nccl.h's ncclDataType_t ncclFloat32 and ncclRedOp_t ncclSum.
enum { MLRA_NCCL_FLOAT32 = 7, MLRA_NCCL_SUM = 0 };

// The cache storage type of the decode kernels, their ELEM define (NVRTC compiles
// kernels/decode_attention.cu without this header, so its `#if ELEM == …` lines
// carry these values as numbers).
typedef enum { MLRA_ELEM_BF16 = 0, MLRA_ELEM_F16 = 1, MLRA_ELEM_F32 = 2 } mlra_elem;

// cuDeviceGetAttribute values (cuda.h CUdevice_attribute).
enum {
    MLRA_CU_ATTR_CLOCK_RATE_KHZ = 13,
    MLRA_CU_ATTR_SM_COUNT = 16,
    MLRA_CU_ATTR_MEMORY_CLOCK_RATE_KHZ = 36,
    MLRA_CU_ATTR_GLOBAL_MEMORY_BUS_WIDTH = 37,
    MLRA_CU_ATTR_L2_CACHE_SIZE = 38,
    MLRA_CU_ATTR_CC_MAJOR = 75,
    MLRA_CU_ATTR_CC_MINOR = 76,
    MLRA_CU_ATTR_MAX_SHARED_PER_BLOCK_OPTIN = 97,
    MLRA_CU_ATTR_MAX_SHARED_PER_SM = 81,
};
enum { MLRA_CU_FUNC_ATTR_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8 };
enum { MLRA_CU_STREAM_NON_BLOCKING = 1, MLRA_CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1 };
enum { MLRA_NVML_CLOCK_SM = 1, MLRA_NVML_CLOCK_MEM = 2 };
enum { MLRA_CUDA_ERROR_OUT_OF_MEMORY = 2, MLRA_CUDA_ERROR_NO_DEVICE = 100 };
// cublas_api.h: cublasOperation_t, cublasMath_t.
enum { MLRA_CUBLAS_OP_N = 0, MLRA_CUBLAS_OP_T = 1, MLRA_CUBLAS_DEFAULT_MATH = 0 };
// library_types.h cudaDataType_t, cublas_api.h cublasComputeType_t and cublasGemmAlgo_t.
enum { MLRA_CUDA_R_32F = 0, MLRA_CUDA_R_16F = 2, MLRA_CUDA_R_16BF = 14, MLRA_CUBLAS_COMPUTE_32F = 68, MLRA_CUBLAS_GEMM_DEFAULT = -1 };

/// Every entry point, NULL until loaded. Swift calls them as `mlra_cuda.cuInit!(0)`.
typedef struct {
    CUresult (*cuInit)(unsigned int flags);
    CUresult (*cuDriverGetVersion)(int *version);
    CUresult (*cuGetErrorString)(CUresult error, const char **str);
    CUresult (*cuGetErrorName)(CUresult error, const char **str);
    CUresult (*cuDeviceGetCount)(int *count);
    CUresult (*cuDeviceGet)(CUdevice *device, int ordinal);
    CUresult (*cuDeviceGetName)(char *name, int len, CUdevice dev);
    CUresult (*cuDeviceGetUuid)(CUuuid *uuid, CUdevice dev);
    CUresult (*cuDeviceGetPCIBusId)(char *pciBusId, int len, CUdevice dev);
    CUresult (*cuDeviceGetAttribute)(int *value, int attrib, CUdevice dev);
    CUresult (*cuDeviceTotalMem)(size_t *bytes, CUdevice dev);
    CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *ctx, CUdevice dev);
    CUresult (*cuCtxSetCurrent)(CUcontext ctx);
    CUresult (*cuCtxSynchronize)(void);
    CUresult (*cuMemGetInfo)(size_t *free, size_t *total);
    CUresult (*cuMemAlloc)(CUdeviceptr *dptr, size_t bytes);
    CUresult (*cuMemFree)(CUdeviceptr dptr);
    CUresult (*cuMemAllocHost)(void **pp, size_t bytes);
    CUresult (*cuMemFreeHost)(void *p);
    CUresult (*cuMemcpyHtoD)(CUdeviceptr dst, const void *src, size_t bytes);
    CUresult (*cuMemcpyDtoH)(void *dst, CUdeviceptr src, size_t bytes);
    CUresult (*cuMemcpyDtoD)(CUdeviceptr dst, CUdeviceptr src, size_t bytes);
    CUresult (*cuMemsetD8)(CUdeviceptr dst, unsigned char value, size_t count);
    CUresult (*cuMemcpyHtoDAsync)(CUdeviceptr dst, const void *src, size_t bytes, CUstream stream);
    CUresult (*cuMemcpyDtoHAsync)(void *dst, CUdeviceptr src, size_t bytes, CUstream stream);
    CUresult (*cuMemsetD8Async)(CUdeviceptr dst, unsigned char value, size_t count, CUstream stream);
    CUresult (*cuEventDestroy)(CUevent event);
    CUresult (*cuModuleLoadData)(CUmodule *module, const void *image);
    CUresult (*cuModuleUnload)(CUmodule module);
    CUresult (*cuModuleGetFunction)(CUfunction *fn, CUmodule module, const char *name);
    CUresult (*cuFuncSetAttribute)(CUfunction fn, int attrib, int value);
    CUresult (*cuFuncGetAttribute)(int *value, int attrib, CUfunction fn);
    CUresult (*cuLaunchKernel)(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                               unsigned sharedBytes, CUstream stream, void **params, void **extra);
    CUresult (*cuStreamCreate)(CUstream *stream, unsigned int flags);
    CUresult (*cuStreamSynchronize)(CUstream stream);
    CUresult (*cuStreamBeginCapture)(CUstream stream, int mode);
    CUresult (*cuStreamEndCapture)(CUstream stream, CUgraph *graph);
    CUresult (*cuGraphInstantiateWithFlags)(CUgraphExec *exec, CUgraph graph, unsigned long long flags);
    CUresult (*cuGraphLaunch)(CUgraphExec exec, CUstream stream);
    CUresult (*cuGraphExecDestroy)(CUgraphExec exec);
    CUresult (*cuGraphDestroy)(CUgraph graph);
    CUresult (*cuEventCreate)(CUevent *event, unsigned int flags);
    CUresult (*cuEventRecord)(CUevent event, CUstream stream);
    CUresult (*cuEventSynchronize)(CUevent event);
    CUresult (*cuEventElapsedTime)(float *ms, CUevent start, CUevent end);
    // Optional (NULL when the driver lacks it): launches with attributes, mlra_cuda_launch_dependent.
    CUresult (*cuLaunchKernelEx)(const void *config, CUfunction f, void **params, void **extra);

    nvrtcResult (*nvrtcVersion)(int *major, int *minor);
    const char *(*nvrtcGetErrorString)(nvrtcResult result);
    nvrtcResult (*nvrtcCreateProgram)(nvrtcProgram *prog, const char *src, const char *name, int numHeaders,
                                      const char *const *headers, const char *const *includeNames);
    nvrtcResult (*nvrtcCompileProgram)(nvrtcProgram prog, int numOptions, const char *const *options);
    nvrtcResult (*nvrtcGetProgramLogSize)(nvrtcProgram prog, size_t *size);
    nvrtcResult (*nvrtcGetProgramLog)(nvrtcProgram prog, char *log);
    nvrtcResult (*nvrtcGetCUBINSize)(nvrtcProgram prog, size_t *size);
    nvrtcResult (*nvrtcGetCUBIN)(nvrtcProgram prog, char *cubin);
    nvrtcResult (*nvrtcDestroyProgram)(nvrtcProgram *prog);

    cublasStatus_t (*cublasCreate)(cublasHandle_t *handle);
    cublasStatus_t (*cublasDestroy)(cublasHandle_t handle);
    cublasStatus_t (*cublasGetVersion)(cublasHandle_t handle, int *version);
    cublasStatus_t (*cublasSetStream)(cublasHandle_t handle, CUstream stream);
    cublasStatus_t (*cublasSetMathMode)(cublasHandle_t handle, int mode);
    cublasStatus_t (*cublasSgemm)(cublasHandle_t handle, int transa, int transb, int m, int n, int k, const float *alpha,
                                  const float *a, int lda, const float *b, int ldb, const float *beta, float *c, int ldc);
    cublasStatus_t (*cublasSgemmStridedBatched)(cublasHandle_t handle, int transa, int transb, int m, int n, int k,
                                                const float *alpha, const float *a, int lda, long long stridea,
                                                const float *b, int ldb, long long strideb, const float *beta,
                                                float *c, int ldc, long long stridec, int batch);
    cublasStatus_t (*cublasGemmEx)(cublasHandle_t handle, int transa, int transb, int m, int n, int k, const void *alpha,
                                   const void *a, int atype, int lda, const void *b, int btype, int ldb, const void *beta,
                                   void *c, int ctype, int ldc, int compute, int algo);
    cublasStatus_t (*cublasGemmStridedBatchedEx)(cublasHandle_t handle, int transa, int transb, int m, int n, int k,
                                                 const void *alpha, const void *a, int atype, int lda, long long stridea,
                                                 const void *b, int btype, int ldb, long long strideb, const void *beta,
                                                 void *c, int ctype, int ldc, long long stridec, int batch, int compute, int algo);

    ncclResult_t (*ncclGetVersion)(int *version);
    const char *(*ncclGetErrorString)(ncclResult_t result);
    ncclResult_t (*ncclGetUniqueId)(ncclUniqueId *uniqueId);
    ncclResult_t (*ncclCommInitRank)(ncclComm_t *comm, int nranks, ncclUniqueId commId, int rank);
    ncclResult_t (*ncclCommDestroy)(ncclComm_t comm);
    ncclResult_t (*ncclAllReduce)(const void *sendbuff, void *recvbuff, size_t count, int datatype, int op, ncclComm_t comm,
                                  CUstream stream);

    nvmlReturn_t (*nvmlInit)(void);
    nvmlReturn_t (*nvmlDeviceGetHandleByPciBusId)(const char *pciBusId, nvmlDevice_t *device);
    nvmlReturn_t (*nvmlDeviceGetClockInfo)(nvmlDevice_t device, int type, unsigned int *clockMHz);
    nvmlReturn_t (*nvmlSystemGetDriverVersion)(char *version, unsigned int length);
} mlra_cuda_api;

extern mlra_cuda_api mlra_cuda;

/// Opens libcuda.so.1 and resolves the driver entry points. 0 on success; otherwise
/// writes one sentence into `err`.
int mlra_cuda_load_driver(char *err, size_t errlen);
/// Opens NVRTC: `path` (a file, or a folder holding libnvrtc.so.*) when not NULL/empty,
/// else libnvrtc.so.13, .12, .so from the library path. Preloads the builtins library
/// beside it, so a pip wheel's copy works without LD_LIBRARY_PATH. On success writes
/// the path it opened into `opened`.
int mlra_cuda_load_nvrtc(const char *path, char *opened, size_t openedlen, char *err, size_t errlen);
/// Opens cuBLAS: `path` (a file, or a folder holding libcublas.so.*) when not NULL/empty,
/// else libcublas.so.13, .12, .so from the library path. On success writes the path it
/// opened into `opened`; otherwise one sentence into `err`, naming what it tried.
int mlra_cuda_load_cublas(const char *path, char *opened, size_t openedlen, char *err, size_t errlen);
/// Opens NCCL: `path` (a file, or a folder holding libnccl.so.*) when not NULL/empty, else
/// libnccl.so.2, .so from the library path. On success writes the path it opened into
/// `opened`; otherwise one sentence into `err`, naming what it tried.
int mlra_cuda_load_nccl(const char *path, char *opened, size_t openedlen, char *err, size_t errlen);
/// ncclCommInitRank with the unique id given as its MLRA_NCCL_UNIQUE_ID_BYTES bytes (the
/// struct goes by value, which is simplest to spell in C).
ncclResult_t mlra_nccl_comm_init_rank(ncclComm_t *comm, int nranks, const void *unique_id, int rank);
/// Launches `f` as a programmatic dependent of the kernel launched before it on `stream`
/// (cuLaunchKernelEx with CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION): it may start
/// before that kernel ends and waits for it with griddepcontrol.wait. Returns the driver's
/// result; 801 (CUDA_ERROR_NOT_SUPPORTED) when the driver has no cuLaunchKernelEx.
CUresult mlra_cuda_launch_dependent(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned sharedBytes,
                                    CUstream stream, void **params);
/// Opens NVML (libnvidia-ml.so.1) for clock readings; optional, 0 on success.
int mlra_cuda_load_nvml(void);

#endif
