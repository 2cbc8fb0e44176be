package transfer

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Send serves one receiver over an authenticated stream: the manifest, then
// every requested file from its requested offset, in chunks, each with its
// SHA-256. It returns when the receiver has acknowledged everything.
func Send(ctx context.Context, rw io.ReadWriter, m *Manifest, srcs []Source, progress func(Progress)) error {
	if progress == nil {
		progress = func(Progress) {}
	}
	w := bufio.NewWriterSize(rw, 256<<10)
	req, err := offerManifest(w, rw, m)
	if err != nil {
		return err
	}
	s := &sender{w: w, rw: rw, m: m, progress: progress, started: map[int]bool{}}
	if err := s.checkRequest(req); err != nil {
		sendError(rw, err)
		return err
	}
	// A reader stage reads and hashes chunks while this goroutine encrypts
	// and sends the previous ones; a fixed pool of buffers bounds memory.
	free := make(chan []byte, sendDepth)
	for i := 0; i < sendDepth; i++ {
		free <- make([]byte, chunkHeader+m.ChunkSize)
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

// offerManifest sends the manifest and reads the receiver's request.
func offerManifest(w *bufio.Writer, rw io.ReadWriter, m *Manifest) (request, error) {
	var req request
	mb, err := json.Marshal(m)
	if err != nil {
		return req, err
	}
	if _, err := writeFrame(w, frameManifest, mb, nil); err != nil {
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
	fbuf           []byte // frame buffer, reused
}

// checkRequest refuses a request for entries or offsets the manifest does
// not offer (a receiver asks only for whole chunks of files), and a
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
			r.Offset > m.Files[r.Index].Size || r.Offset%int64(m.ChunkSize) != 0 && r.Offset != m.Files[r.Index].Size {
			return fmt.Errorf("%w: bad request for entry %d at %d", ErrFrame, r.Index, r.Offset)
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
		sendError(s.rw, errors.New("sender cannot read a file"))
		return pc.err
	}
	e := &s.m.Files[pc.index]
	if !s.started[pc.index] {
		s.started[pc.index] = true
		s.event("file-start", e, pc.off)
	}
	if pc.end {
		var idx [4]byte
		binary.BigEndian.PutUint32(idx[:], uint32(pc.index))
		if _, err := writeFrame(s.w, frameEnd, idx[:], nil); err != nil {
			return mapIOErr(err)
		}
		return nil
	}
	hdr := appendChunkHeader(pc.buf[:0], uint32(pc.index), pc.off, pc.sum)
	var err error
	if s.fbuf, err = writeFrame(s.w, frameChunk, pc.buf[:len(hdr)+pc.n], s.fbuf); err != nil {
		return mapIOErr(err)
	}
	s.sent += int64(pc.n)
	s.event("chunk", e, pc.off+int64(pc.n))
	return nil
}

// finish says the transfer is done and waits for the receiver to confirm
// every file verified and in place.
func (s *sender) finish() error {
	if _, err := writeFrame(s.w, frameDone, nil, nil); err != nil {
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

// piece is a chunk read and hashed by the reader stage, the end of a
// file (end), or the error that stopped the stage.
type piece struct {
	index int
	off   int64
	n     int
	sum   [sha256.Size]byte
	buf   []byte
	end   bool
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
		if !readFile(ctx, m, srcs[r.Index].Local, r, free, put) {
			return
		}
	}
}

// readFile hands one file's requested chunks, then its end, to put; it
// reports whether to go on.
func readFile(ctx context.Context, m *Manifest, local string, r fileRequest, free chan []byte, put func(piece) bool) bool {
	e := m.Files[r.Index]
	file, err := os.Open(local)
	if err != nil {
		put(piece{err: fmt.Errorf("open %s: %w", local, err)})
		return false
	}
	defer file.Close()
	for off := r.Offset; off < e.Size; {
		var buf []byte
		select {
		case buf = <-free:
		case <-ctx.Done():
			return false
		}
		n := int(min(int64(m.ChunkSize), e.Size-off))
		data := buf[chunkHeader : chunkHeader+n]
		if _, err := file.ReadAt(data, off); err != nil {
			put(piece{err: fmt.Errorf("read %s: %w", local, err)})
			return false
		}
		if !put(piece{index: r.Index, off: off, n: n, sum: sha256.Sum256(data), buf: buf}) {
			return false
		}
		off += int64(n)
	}
	return put(piece{index: r.Index, end: true})
}
