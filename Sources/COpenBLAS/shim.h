// OpenBLAS's CBLAS interface. Debian's cblas.h (under the openblas-pthread include directory
// that pkg-config names) also declares the OpenBLAS runtime calls Tessera uses: the core name
// in use and the thread count.
#include <cblas.h>
