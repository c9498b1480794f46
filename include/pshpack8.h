/* pshpack8.h -- ntmem: structures that follow are packed to 8 bytes until poppack.h. */
#pragma pack(push, 8)
