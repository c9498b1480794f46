/* specstrings.h -- ntmem: the WDK's name for the annotation macros of sal.h. */
#ifndef NTMEM_SPECSTRINGS_H
#define NTMEM_SPECSTRINGS_H
#include "sal.h"
#endif
