/* pshpack1.h -- ntmem: structures that follow are packed to 1 bytes until poppack.h. */
#pragma pack(push, 1)
