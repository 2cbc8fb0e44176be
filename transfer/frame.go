package transfer

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frame types inside the secure channel.
const (
	frameManifest = 'M' // sender -> receiver: JSON manifest
	frameRequest  = 'R' // receiver -> sender: JSON request (files and offsets)
	frameChunk    = 'C' // sender -> receiver: file index, offset, data
	frameEnd      = 'E' // sender -> receiver: file index done, its SHA-256
	frameDone     = 'D' // sender -> receiver: everything requested was sent
	frameAck      = 'K' // receiver -> sender: everything verified and in place
	frameError    = 'X' // either way: a message, then close
)

// ErrFrame is wrapped by every malformed-frame error.
var ErrFrame = errors.New("malformed frame")

// maxControl bounds manifest, request and error frames.
const maxControl = 256 << 20

// frameHeader is a frame's type (1) and payload length (4).
const frameHeader = 5

// chunkHeader is index (4) + offset (8). A chunk carries no hash of its
// own: the secure channel authenticates every record, in order, so a chunk
// that arrives is the sender's. When the receiver asks for checksums, the
// file's SHA-256 follows its last chunk (endSize: index (4) + SHA-256).
const (
	chunkHeader = 4 + 8
	endSize     = 4 + sha256.Size
)

// frame is one decoded frame.
type frame struct {
	typ     byte
	payload []byte
}

// writeFrame writes type and length, then the payload (not copied: large
// payloads go straight to the writer).
func writeFrame(w io.Writer, typ byte, payload []byte) error {
	var h [frameHeader]byte
	h[0] = typ
	binary.BigEndian.PutUint32(h[1:], uint32(len(payload)))
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	if len(payload) == 0 {
		return nil
	}
	_, err := w.Write(payload)
	return err
}

// readFrame reads one frame; chunk frames may be up to maxChunk bytes of
// data, every other frame up to maxControl. buf is reused when large enough.
func readFrame(r io.Reader, maxChunk int, buf []byte) (frame, []byte, error) {
	var h [frameHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return frame{}, buf, err
	}
	n := int(binary.BigEndian.Uint32(h[1:]))
	limit := maxControl
	switch h[0] {
	case frameChunk:
		limit = chunkHeader + maxChunk
		if n < chunkHeader {
			return frame{}, buf, fmt.Errorf("%w: chunk of %d bytes", ErrFrame, n)
		}
	case frameManifest, frameRequest, frameError:
	case frameEnd:
		limit = endSize
	case frameDone, frameAck:
		limit = 0
	default:
		return frame{}, buf, fmt.Errorf("%w: unknown type %q", ErrFrame, h[0])
	}
	if n > limit {
		return frame{}, buf, fmt.Errorf("%w: %q frame of %d bytes (limit %d)", ErrFrame, h[0], n, limit)
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return frame{}, buf, err
	}
	return frame{typ: h[0], payload: buf}, buf, nil
}

// chunk is a decoded chunk frame.
type chunk struct {
	index  uint32
	offset int64
	data   []byte
}

func parseChunk(p []byte) (chunk, error) {
	if len(p) < chunkHeader {
		return chunk{}, fmt.Errorf("%w: short chunk", ErrFrame)
	}
	c := chunk{index: binary.BigEndian.Uint32(p[0:4]), offset: int64(binary.BigEndian.Uint64(p[4:12])), data: p[chunkHeader:]}
	if c.offset < 0 {
		return chunk{}, fmt.Errorf("%w: negative offset", ErrFrame)
	}
	return c, nil
}

func appendChunkHeader(b []byte, index uint32, offset int64) []byte {
	b = binary.BigEndian.AppendUint32(b, index)
	return binary.BigEndian.AppendUint64(b, uint64(offset))
}

// fileEnd is a decoded end frame: which file ended, and its SHA-256 when
// the receiver asked for checksums (nil otherwise).
type fileEnd struct {
	index uint32
	sum   []byte
}

func parseEnd(p []byte) (fileEnd, error) {
	if len(p) != 4 && len(p) != endSize {
		return fileEnd{}, fmt.Errorf("%w: end frame of %d bytes", ErrFrame, len(p))
	}
	e := fileEnd{index: binary.BigEndian.Uint32(p[:4])}
	if len(p) == endSize {
		e.sum = append([]byte(nil), p[4:]...)
	}
	return e, nil
}

// appendEnd appends an end frame's payload; sum is nil or a SHA-256.
func appendEnd(b []byte, index uint32, sum []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, index)
	return append(b, sum...)
}
