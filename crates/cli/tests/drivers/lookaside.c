/* The seed's 'LciN' lookaside list (section 7.2), its head in nonpaged pool. */
#include <ntddk.h>

typedef struct _FDO_DATA {
    ULONG Flags;
    NPAGED_LOOKASIDE_LIST RecvLookasideList;
} FDO_DATA, *PFDO_DATA;

#define RecvBlockSize 1514

NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    PFDO_DATA FdoData;
    PVOID pRecvBlock, blocks[8];
    int i;

    UNREFERENCED_PARAMETER(DriverObject);
    UNREFERENCED_PARAMETER(RegistryPath);
    FdoData = ExAllocatePoolWithTag(NonPagedPool, sizeof(FDO_DATA), 'ataD');
    if (FdoData == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    ExInitializeNPagedLookasideList
          (&FdoData->RecvLookasideList,
           NULL,
           NULL,
           0,
           RecvBlockSize,
           'LciN',
           0);
    pRecvBlock = ExAllocateFromNPagedLookasideList (
                     &FdoData->RecvLookasideList);
    if (pRecvBlock == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    ExFreeToNPagedLookasideList (
                     &FdoData->RecvLookasideList,
                     pRecvBlock);
    for (i = 0; i < 8; i++) {
        blocks[i] = ExAllocateFromNPagedLookasideList(&FdoData->RecvLookasideList);
    }
    for (i = 0; i < 8; i++) {
        ExFreeToNPagedLookasideList(&FdoData->RecvLookasideList, blocks[i]);
    }
    DbgPrint("lookaside: Depth %u MaximumDepth %u TotalAllocates %u AllocateMisses %u TotalFrees %u FreeMisses %u cached %u\n",
             FdoData->RecvLookasideList.L.Depth, FdoData->RecvLookasideList.L.MaximumDepth,
             FdoData->RecvLookasideList.L.TotalAllocates, FdoData->RecvLookasideList.L.AllocateMisses,
             FdoData->RecvLookasideList.L.TotalFrees, FdoData->RecvLookasideList.L.FreeMisses,
             ExQueryDepthSList(&FdoData->RecvLookasideList.L.ListHead));
    ExDeleteNPagedLookasideList (
                     &FdoData->RecvLookasideList);
    ExFreePoolWithTag(FdoData, 'ataD');
    return STATUS_SUCCESS;
}
