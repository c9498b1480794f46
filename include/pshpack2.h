/* pshpack2.h -- ntmem: structures that follow are packed to 2 bytes until poppack.h. */
#pragma pack(push, 2)
