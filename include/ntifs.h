/* ntifs.h -- ntmem: an alias of ntddk.h (ntmem implements no file-system routines). */
#ifndef NTMEM_NTIFS_H
#define NTMEM_NTIFS_H
#include "ntddk.h"
#endif
