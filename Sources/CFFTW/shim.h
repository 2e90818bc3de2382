// FFTW 3 (double precision), for the noise probe's spectra (pkg-config "fftw3").
#ifndef MLRA_CFFTW_SHIM_H
#define MLRA_CFFTW_SHIM_H
#if __has_include(<fftw3.h>)
#include <fftw3.h>
#else
#error "FFTW 3 is missing: install libfftw3-dev (Debian/Ubuntu; scripts/setup.sh does) or put fftw3.pc on PKG_CONFIG_PATH"
#endif
#endif
