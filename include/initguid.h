/*
 * initguid.h -- makes the DEFINE_GUIDs that follow define their GUIDs instead of
 * declaring them (as the Windows SDK's initguid.h does).
 */
#define INITGUID
#include "guiddef.h"
