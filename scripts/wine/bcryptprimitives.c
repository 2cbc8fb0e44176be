/*
 * bcryptprimitives.dll for Wine 8.0 (Debian 12), which lacks it: Go's
 * Windows runtime (Go 1.24 and later) needs its ProcessPrng at start and
 * aborts without it ("bcryptprimitives.dll not found"). This one fills the
 * buffer from RtlGenRandom (advapi32's SystemFunction036), which Wine has.
 * Used only by scripts/wine/test, inside a throwaway Wine prefix.
 */
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
	while (len > 0) {
		ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
		if (!SystemFunction036(data, n)) return FALSE;
		data += n;
		len -= n;
	}
	return TRUE;
}
