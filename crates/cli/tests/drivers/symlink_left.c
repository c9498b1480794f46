/* symlinks.c, also creating \DosDevices\NtmemLeft and never deleting it. */
#define LEAVE_A_LINK
#include "symlinks.c"
