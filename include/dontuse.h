/*
 * dontuse.h -- in the WDK, marks C run-time string routines that are unsafe in
 * drivers as deprecated (use ntstrsafe.h instead). ntmem does not deprecate them;
 * the header exists so that drivers including it build.
 */
#ifndef _DONTUSE_H_INCLUDED_
#define _DONTUSE_H_INCLUDED_
#endif
