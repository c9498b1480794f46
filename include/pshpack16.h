/* pshpack16.h -- ntmem: structures that follow are packed to 16 bytes until poppack.h. */
#pragma pack(push, 16)
