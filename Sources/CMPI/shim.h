// MPI's handles are macros (Open MPI: over global symbols; MPICH: integer
// constants); Swift cannot import them, so they are re-exported here as inline
// functions. Only MPI-3 standard names: the same shim builds against Open MPI
// (pkg-config ompi-c) and MPICH (pkg-config mpich), see Package.swift.
#ifndef MLRA_CMPI_SHIM_H
#define MLRA_CMPI_SHIM_H
#include <mpi.h>
#include <dlfcn.h>
#include <stddef.h>

static inline MPI_Comm mlra_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm mlra_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Datatype mlra_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype mlra_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype mlra_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype mlra_byte(void) { return MPI_BYTE; }
static inline MPI_Op mlra_op_sum(void) { return MPI_SUM; }
static inline MPI_Op mlra_op_max(void) { return MPI_MAX; }
static inline MPI_Errhandler mlra_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline void *mlra_in_place(void) { return MPI_IN_PLACE; }
static inline int mlra_success(void) { return MPI_SUCCESS; }
static inline int mlra_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
static inline int mlra_max_library_version_string(void) { return MPI_MAX_LIBRARY_VERSION_STRING; }
static inline int mlra_max_processor_name(void) { return MPI_MAX_PROCESSOR_NAME; }
static inline MPI_Status *mlra_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Request mlra_request_null(void) { return MPI_REQUEST_NULL; }
static inline int mlra_comm_type_shared(void) { return MPI_COMM_TYPE_SHARED; }
static inline MPI_Info mlra_info_null(void) { return MPI_INFO_NULL; }
// Takes the handle by value: Open MPI's handles import as optional pointers and
// MPICH's as integers, so `&handle` has no spelling that compiles against both.
static inline int mlra_comm_free(MPI_Comm comm) { return MPI_Comm_free(&comm); }
// Whether the MPI library takes device pointers (CUDA-aware), asked at run time: Open MPI's
// MPIX_Query_cuda_support() (mpi-ext.h) when the loaded library exports it: 1 aware, 0 not;
// -1 when it does not (MPICH, or an Open MPI built without the extension). Looked up with
// dlsym so the shim builds against either library and needs no mpi-ext.h.
static inline int mlra_mpi_cuda_support(void) {
    void *self = dlopen(NULL, RTLD_NOW);
    int (*query)(void) = self ? (int (*)(void))dlsym(self, "MPIX_Query_cuda_support") : NULL;
    return query ? query() : -1;
}
#endif
