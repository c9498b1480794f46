/* poppack.h -- ntmem: restores the packing in force before the matching pshpackN.h. */
#pragma pack(pop)
