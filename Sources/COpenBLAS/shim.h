// OpenBLAS's CBLAS interface. Debian's cblas.h (under the openblas-pthread include directory
// that pkg-config names) also declares the OpenBLAS runtime calls Tessera uses: the core name
// in use and the thread count.
#include <cblas.h>

// LAPACK's symmetric eigensolver, which Debian's OpenBLAS also exports (Fortran calling
// convention: every argument by reference, then the hidden lengths of the two character
// arguments). Tessera uses it for matrix square roots in the Fréchet distance.
#include <stddef.h>
void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
            double *work, const int *lwork, int *info, size_t jobz_length, size_t uplo_length);
