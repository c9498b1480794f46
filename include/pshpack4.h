/* pshpack4.h -- ntmem: structures that follow are packed to 4 bytes until poppack.h. */
#pragma pack(push, 4)
