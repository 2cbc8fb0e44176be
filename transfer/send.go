package transfer

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"time"
)

// Send serves one receiver over an authenticated stream: the manifest, then
// every requested file from its requested offset, in chunks, each file
// followed by its end (with its SHA-256, computed as it is read, when the
// receiver asked for checksums). It returns when the receiver has
// acknowledged everything.
func Send(ctx context.Context, rw io.ReadWriter, m *Manifest, srcs []Source, progress func(Progress)) error {
	if progress == nil {
		progress = func(Progress) {}
	}
	w := bufio.NewWriterSize(rw, 256<<10)
	offered, lead := withLead(m, srcs)
	req, err := offerManifest(w, rw, offered, lead)
	if err != nil {
		return err
	}
	s := &sender{w: w, rw: rw, m: m, progress: progress, started: map[int]bool{}}
	if err := s.checkRequest(req); err != nil {
		sendError(rw, err)
		return err
	}
	if offered.Lead != nil && len(req.Files) > 0 && req.Files[0].Index == offered.Lead.Index && req.Files[0].Offset == 0 {
		// The receiver takes the lead: the rest of that file follows it.
		req.Files[0].Offset, req.Files[0].lead = int64(offered.Lead.Size), true
		s.sent += int64(offered.Lead.Size)
		s.started[offered.Lead.Index] = true
		s.event("file-start", &m.Files[offered.Lead.Index], 0)
	}
	// A reader stage reads (and hashes) chunks while this goroutine encrypts
	// and sends the previous ones (two cores busy where there are two); a
	// fixed pool of buffers bounds memory whatever the file sizes.
	free := make(chan []byte, sendDepth)
	for i := 0; i < sendDepth; i++ {
		free <- make([]byte, frameHeader+chunkHeader+m.ChunkSize)
	}
	pieces := make(chan piece, sendDepth)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go readPieces(rctx, m, srcs, req, free, pieces)
	for pc := range pieces {
		if err := s.send(pc); err != nil {
			return err
		}
		if pc.buf != nil {
			free <- pc.buf
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return s.finish()
}

// offerManifest sends the manifest, and the lead chunk behind it (lead,
// a whole chunk frame, when m.Lead is set), and reads the receiver's
// request.
func offerManifest(w *bufio.Writer, rw io.ReadWriter, m *Manifest, lead []byte) (request, error) {
	var req request
	mb, err := json.Marshal(m)
	if err != nil {
		return req, err
	}
	if err := writeFrame(w, frameManifest, mb); err != nil {
		return req, mapIOErr(err)
	}
	if _, err := w.Write(lead); err != nil {
		return req, mapIOErr(err)
	}
	if err := w.Flush(); err != nil {
		return req, mapIOErr(err)
	}
	f, _, err := readFrame(rw, 0, nil)
	if err != nil {
		return req, mapIOErr(err)
	}
	switch f.typ {
	case frameError:
		if string(f.payload) == ErrListedOnly.Error() {
			return req, ErrListedOnly
		}
		return req, fmt.Errorf("%w: %s", ErrRemote, Printable(string(f.payload), 200))
	case frameRequest:
	default:
		return req, fmt.Errorf("%w: expected a request, got %q", ErrFrame, f.typ)
	}
	if err := json.Unmarshal(f.payload, &req); err != nil {
		return req, fmt.Errorf("%w: request: %v", ErrFrame, err)
	}
	return req, nil
}

// withLead is m as offered to a receiver: with a lead (Manifest.Lead) of
// the first file that has data, and that chunk's frame; m itself when the
// file cannot be read as shared (the transfer then reports it as usual).
func withLead(m *Manifest, srcs []Source) (*Manifest, []byte) {
	for i, e := range m.Files {
		if e.Dir || e.Size == 0 {
			continue
		}
		n := int(min(int64(MaxLead), e.Size))
		frame, err := readLead(srcs[i].Local, e, i, n)
		if err != nil {
			return m, nil
		}
		offered := *m
		offered.Lead = &Lead{Index: i, Size: n}
		return &offered, frame
	}
	return m, nil
}

// readLead is the chunk frame of the first n bytes of entry index, read
// from local if it is still the file e describes.
func readLead(local string, e Entry, index, n int) ([]byte, error) {
	file, err := os.Open(local)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", local, err)
	}
	defer file.Close()
	if err := sameVersion(file, e); err != nil {
		return nil, err
	}
	frame := make([]byte, frameHeader+chunkHeader+n)
	if _, err := file.ReadAt(frame[frameHeader+chunkHeader:], 0); err != nil {
		return nil, fmt.Errorf("read %s: %w", local, err)
	}
	frame[0] = frameChunk
	binary.BigEndian.PutUint32(frame[1:frameHeader], uint32(chunkHeader+n))
	appendChunkHeader(frame[frameHeader:frameHeader], uint32(index), 0)
	return frame, nil
}

// sender is one Send after the request: what is sent, and progress.
type sender struct {
	w        *bufio.Writer
	rw       io.ReadWriter
	m        *Manifest
	progress func(Progress)
	// total and resumed are the bytes requested and already at the receiver.
	total, resumed int64
	sent           int64
	started        map[int]bool
}

// checkRequest refuses a request for entries or offsets the manifest does
// not offer, a resumed offset without the hash of what precedes it, and a
// request that names an entry twice (a receiver that would have the
// sender read one file thousands of times).
func (s *sender) checkRequest(req request) error {
	m := s.m
	asked := make(map[int]bool, len(req.Files))
	for _, r := range req.Files {
		if asked[r.Index] {
			return fmt.Errorf("%w: entry %d requested twice", ErrFrame, r.Index)
		}
		asked[r.Index] = true
		if r.Index < 0 || r.Index >= len(m.Files) || m.Files[r.Index].Dir || r.Offset < 0 ||
			r.Offset > m.Files[r.Index].Size {
			return fmt.Errorf("%w: bad request for entry %d at %d", ErrFrame, r.Index, r.Offset)
		}
		if b, err := hex.DecodeString(r.Prefix); (r.Offset > 0) != (err == nil && len(b) == sha256.Size) || r.Offset == 0 && r.Prefix != "" {
			return fmt.Errorf("%w: entry %d at %d with prefix %q", ErrFrame, r.Index, r.Offset, Printable(r.Prefix, 80))
		}
		s.total += m.Files[r.Index].Size
		s.resumed += r.Offset
	}
	return nil
}

func (s *sender) event(kind string, e *Entry, fileBytes int64) {
	ev := Progress{Time: time.Now(), Kind: kind, Sent: s.sent, Resumed: s.resumed, Total: s.total}
	if e != nil {
		ev.File, ev.FileBytes, ev.FileSize = e.Path, fileBytes, e.Size
	}
	s.progress(ev)
}

// send writes one piece: a chunk frame, or the end of a file.
func (s *sender) send(pc piece) error {
	if pc.err != nil {
		tell := "sender cannot read a file"
		if errors.Is(pc.err, ErrChanged) {
			tell = "a shared file changed on the sender's side after it was shared; the sender must share it again"
		}
		sendError(s.rw, errors.New(tell))
		return pc.err
	}
	e := &s.m.Files[pc.index]
	if !s.started[pc.index] {
		s.started[pc.index] = true
		s.event("file-start", e, pc.off)
	}
	if pc.end {
		if err := writeFrame(s.w, frameEnd, appendEnd(nil, uint32(pc.index), pc.sum)); err != nil {
			return mapIOErr(err)
		}
		return nil
	}
	// The frame's and the chunk's headers go in front of the data in the
	// same buffer, and the whole frame goes to the channel in one write,
	// past the buffered writer: the data is copied only by the cipher.
	frame := pc.buf[:frameHeader+chunkHeader+pc.n]
	frame[0] = frameChunk
	binary.BigEndian.PutUint32(frame[1:frameHeader], uint32(chunkHeader+pc.n))
	appendChunkHeader(frame[frameHeader:frameHeader], uint32(pc.index), pc.off)
	if err := s.w.Flush(); err != nil {
		return mapIOErr(err)
	}
	if _, err := s.rw.Write(frame); err != nil {
		return mapIOErr(err)
	}
	s.sent += int64(pc.n)
	s.event("chunk", e, pc.off+int64(pc.n))
	return nil
}

// finish says the transfer is done and waits for the receiver to confirm
// every file verified and in place.
func (s *sender) finish() error {
	if err := writeFrame(s.w, frameDone, nil); err != nil {
		return mapIOErr(err)
	}
	if err := s.w.Flush(); err != nil {
		return mapIOErr(err)
	}
	f, _, err := readFrame(s.rw, 0, nil)
	if err != nil {
		return mapIOErr(err)
	}
	switch f.typ {
	case frameAck:
		s.event("done", nil, 0)
		return nil
	case frameError:
		return fmt.Errorf("%w: %s", ErrRemote, Printable(string(f.payload), 200))
	}
	return fmt.Errorf("%w: expected an acknowledgement, got %q", ErrFrame, f.typ)
}

// sendDepth is how many chunks may be read ahead of the network.
const sendDepth = 4

// piece is a chunk read by the reader stage, the end of a file (end, with
// the file's SHA-256 when the receiver asked for it), or the error that
// stopped the stage.
type piece struct {
	index int
	off   int64
	n     int
	buf   []byte
	end   bool
	sum   []byte
	err   error
}

// readPieces reads the requested files chunk by chunk into buffers from
// free, until done or ctx ends. Every hand-over also gives up when ctx
// ends, so the stage never outlives a Send that returned early.
func readPieces(ctx context.Context, m *Manifest, srcs []Source, req request, free chan []byte, pieces chan<- piece) {
	defer close(pieces)
	put := func(p piece) bool {
		select {
		case pieces <- p:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for _, r := range req.Files {
		if !readFile(ctx, m, srcs[r.Index].Local, r, req.Checksum, free, put) {
			return
		}
	}
}

// readFile hands one file's requested chunks, then its end (with its
// SHA-256 when checksum is set), to put; it reports whether to go on. A
// file that is no longer the version the manifest described (size or
// modification time changed since it was shared, or while it was read)
// stops the transfer: what the receiver would get is not what it was
// offered.
func readFile(ctx context.Context, m *Manifest, local string, r fileRequest, checksum bool, free chan []byte, put func(piece) bool) bool {
	e := m.Files[r.Index]
	file, err := os.Open(local)
	if err != nil {
		put(piece{err: fmt.Errorf("open %s: %w", local, err)})
		return false
	}
	defer file.Close()
	if err := sameVersion(file, e); err != nil {
		put(piece{err: err})
		return false
	}
	h := sha256.New()
	off, err := resumeFrom(file, r, h)
	if err != nil {
		put(piece{err: err})
		return false
	}
	start := off
	for off < e.Size {
		var buf []byte
		select {
		case buf = <-free:
		case <-ctx.Done():
			return false
		}
		n := int(min(int64(chunkAt(m.ChunkSize, off-start)), e.Size-off))
		data := buf[frameHeader+chunkHeader : frameHeader+chunkHeader+n]
		if _, err := file.ReadAt(data, off); err != nil {
			put(piece{err: fmt.Errorf("read %s: %w", local, err)})
			return false
		}
		if checksum {
			h.Write(data)
		}
		if !put(piece{index: r.Index, off: off, n: n, buf: buf}) {
			return false
		}
		off += int64(n)
	}
	if err := sameVersion(file, e); err != nil {
		put(piece{err: err})
		return false
	}
	end := piece{index: r.Index, end: true}
	if checksum {
		end.sum = h.Sum(nil)
	}
	return put(end)
}

// firstChunk is the size of the first chunk a sender sends of a file;
// each next chunk doubles, up to the manifest's chunk size. The first
// bytes then reach the receiver's disk after one small record instead of
// a whole chunk pushed through a new connection's slow start.
const firstChunk = 16 << 10

// chunkAt is the size of the chunk that starts sent bytes into a file's
// transfer: firstChunk, doubling each chunk, at most max.
func chunkAt(max int, sent int64) int {
	n := int64(firstChunk)
	for n < int64(max) && sent >= 2*n-firstChunk {
		n *= 2
	}
	return int(min(n, int64(max)))
}

// resumeFrom is where to start sending r: its offset when the file starts
// with the bytes the receiver holds (their SHA-256 is r.Prefix, or they
// are the lead this sender sent; h has then hashed them), 0 when it does
// not (h is reset).
func resumeFrom(file *os.File, r fileRequest, h hash.Hash) (int64, error) {
	if r.Offset == 0 {
		return 0, nil
	}
	if _, err := io.Copy(h, io.NewSectionReader(file, 0, r.Offset)); err != nil {
		return 0, fmt.Errorf("read %s: %w", file.Name(), err)
	}
	if r.lead || hex.EncodeToString(h.Sum(nil)) == r.Prefix {
		return r.Offset, nil
	}
	h.Reset()
	return 0, nil
}

// sameVersion checks that an open file is still the one e describes.
func sameVersion(f *os.File, e Entry) error {
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	if st.Size() != e.Size || st.ModTime().UnixNano() != e.MTime {
		return fmt.Errorf("%w: %s (%d bytes, modified %s; shared as %d bytes, modified %s): share it again once it has stopped changing",
			ErrChanged, f.Name(), st.Size(), st.ModTime().Format(time.RFC3339Nano), e.Size, time.Unix(0, e.MTime).Format(time.RFC3339Nano))
	}
	return nil
}
