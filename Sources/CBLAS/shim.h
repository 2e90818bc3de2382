// OpenBLAS's CBLAS interface (pkg-config "openblas" puts its folder on the path).
#ifndef MLRA_CBLAS_SHIM_H
#define MLRA_CBLAS_SHIM_H
#include <cblas.h>
#endif
