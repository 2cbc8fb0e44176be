package rendezvous

import (
	"net"
	"runtime"
	"testing"
)

// BenchmarkIdleClientHeap reports the server's heap per registered idle
// client (connected, said hello, silent): the client struct, its limiter
// and its entries in the server's and its loop's tables. Its socket is
// kernel memory, not heap.
func BenchmarkIdleClientHeap(b *testing.B) {
	const n = 2000
	s, addr := startServer(b, Config{ConnRate: 1e9, ConnBurst: 1 << 30, MaxClientsPerAddr: 2 * n})
	var before, after runtime.MemStats
	for range b.N {
		runtime.GC()
		runtime.ReadMemStats(&before)
		conns := make([]net.Conn, 0, n)
		for range n {
			c, err := net.Dial("tcp4", addr.String())
			if err != nil {
				b.Fatal(err)
			}
			conns = append(conns, c)
		}
		for s.ClientCount() < n {
			runtime.Gosched()
		}
		// One hello each, read raw so that no client library is counted.
		hello := []byte(`{"jsonrpc":"2.0","id":1,"method":"hello","params":{"version":1}}` + "\n")
		buf := make([]byte, 512)
		for _, c := range conns {
			if _, err := c.Write(hello); err != nil {
				b.Fatal(err)
			}
			if _, err := c.Read(buf); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/n, "heap-bytes/client")
		for _, c := range conns {
			c.Close()
		}
	}
}
