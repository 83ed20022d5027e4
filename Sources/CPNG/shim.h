// libpng's simplified API (png_image_*) and zlib, used by TesseraImage for PNG IO.
#include <png.h>
#include <zlib.h>
