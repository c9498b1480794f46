/* ntddk.h -- ntmem: everything ntmem implements is in wdm.h so far. */
#ifndef NTMEM_NTDDK_H
#define NTMEM_NTDDK_H
#include "wdm.h"
#endif
