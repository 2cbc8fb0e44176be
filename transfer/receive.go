package transfer

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"
)

// Receive reads the manifest, works out what is already here (complete
// files, parts kept from earlier runs), requests the rest, writes it and
// renames each file into place once complete; with opts.Checksum, only
// when its SHA-256 equals the one the sender sent after its data.
func Receive(ctx context.Context, rw io.ReadWriter, opts ReceiveOptions, progress func(Progress)) (*Manifest, error) {
	if progress == nil {
		progress = func(Progress) {}
	}
	m, err := readManifest(rw)
	if err != nil {
		return nil, err
	}
	progress(Progress{Time: time.Now(), Kind: "manifest", Total: m.Total()})
	if opts.OnManifest != nil {
		opts.OnManifest(m)
	}
	if opts.ListOnly {
		sendError(rw, ErrListedOnly)
		return m, nil
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return m, err
	}
	root, err := os.OpenRoot(opts.Dir)
	if err != nil {
		return m, err
	}
	defer root.Close()
	r := &receiver{rw: rw, opts: opts, progress: progress, m: m, root: root}
	defer r.closeParts()
	req, err := r.planFiles()
	if err != nil {
		return m, err
	}
	rb, _ := json.Marshal(req)
	if err := writeFrame(rw, frameRequest, rb); err != nil {
		return m, mapIOErr(err)
	}
	if err := skipLead(rw, m, req); err != nil {
		sendError(rw, errors.New("receiver rejected the lead chunk"))
		return m, err
	}
	startDisk(r)
	defer r.disk.drain()
	return m, r.stream(ctx)
}

// skipLead reads and drops the manifest's lead chunk when req does not
// start with the lead's file from its first byte (then the chunk is the
// first of the stream, taken like any other).
func skipLead(rw io.Reader, m *Manifest, req request) error {
	l := m.Lead
	if l == nil || len(req.Files) > 0 && req.Files[0].Index == l.Index && req.Files[0].Offset == 0 {
		return nil
	}
	fr, _, err := readFrame(rw, MaxLead, nil)
	if err != nil {
		return mapIOErr(err)
	}
	if fr.typ != frameChunk {
		return fmt.Errorf("%w: expected the lead chunk, got %q", ErrFrame, fr.typ)
	}
	c, err := parseChunk(fr.payload)
	if err != nil {
		return err
	}
	if int(c.index) != l.Index || c.offset != 0 || len(c.data) != l.Size {
		return fmt.Errorf("%w: lead chunk of entry %d at %d (%d bytes), the manifest announced entry %d (%d bytes)", ErrFrame, c.index, c.offset, len(c.data), l.Index, l.Size)
	}
	return nil
}

// readManifest reads and parses the sender's first frame.
func readManifest(rw io.ReadWriter) (*Manifest, error) {
	f, _, err := readFrame(rw, 0, nil)
	if err != nil {
		return nil, mapIOErr(err)
	}
	if f.typ == frameError {
		return nil, fmt.Errorf("%w: %s", ErrRemote, Printable(string(f.payload), 200))
	}
	if f.typ != frameManifest {
		return nil, fmt.Errorf("%w: expected a manifest, got %q", ErrFrame, f.typ)
	}
	m, err := ParseManifest(f.payload)
	if err != nil {
		sendError(rw, errors.New("receiver rejected the manifest"))
		return nil, err
	}
	return m, nil
}

// receiver is one Receive after the manifest: the files planned, the disk
// stage writing them, and the position in the sender's stream.
type receiver struct {
	rw       io.ReadWriter
	opts     ReceiveOptions
	progress func(Progress)
	m        *Manifest
	root     *os.Root
	plans    []*plan
	// total is the bytes requested; resumed, those already here (it drops
	// when a sender restarts a part that no longer matches its file).
	total   int64
	resumed atomic.Int64
	disk    *diskStage
	// cur is the plan being received; expect[i] is the next offset of plan
	// i, and held[i] the part plan i resumes from (0 once restarted).
	cur    int
	expect []int64
	held   []int64
}

// planFiles decides per selected entry what to fetch and from where.
func (r *receiver) planFiles() (request, error) {
	var req request
	selected := 0
	for i, e := range r.m.Files {
		if r.opts.Select != nil && !r.opts.Select(e) {
			continue
		}
		selected++
		p, skip, err := preparePlan(r.root, i, e, r.m.ChunkSize, r.opts.Overwrite)
		if err != nil {
			sendError(r.rw, fmt.Errorf("receiver cannot write %s", e.Path))
			return req, err
		}
		if skip {
			r.progress(Progress{Time: time.Now(), Kind: "skip", File: e.Path, FileBytes: e.Size, FileSize: e.Size})
			continue
		}
		if p == nil {
			continue
		}
		r.plans = append(r.plans, p)
		r.expect = append(r.expect, p.offset)
		r.held = append(r.held, p.offset)
		fr := fileRequest{Index: i, Offset: p.offset}
		if p.offset > 0 {
			fr.Prefix = hex.EncodeToString(p.hash.Sum(nil))
		}
		req.Files = append(req.Files, fr)
		r.total += e.Size
		r.resumed.Add(p.offset)
	}
	req.Checksum = r.opts.Checksum
	if selected == 0 && len(r.m.Files) > 0 {
		sendError(r.rw, errors.New("receiver selected nothing"))
		return req, ErrNothingSelected
	}
	if free, ok := freeSpace(r.opts.Dir); ok && r.total-r.resumed.Load() > free {
		sendError(r.rw, errors.New("receiver has no room"))
		return req, fmt.Errorf("%w: %d bytes to receive, %d free in %s", ErrNoSpace, r.total-r.resumed.Load(), free, r.opts.Dir)
	}
	return req, nil
}

// closeParts records how far each open part got (synced first) and closes
// it: an interrupted transfer resumes from there.
func (r *receiver) closeParts() {
	for _, p := range r.plans {
		if p.part != nil {
			p.savedTime = time.Time{} // force the checkpoint
			_ = checkpoint(r.root, p)
			p.part.Close()
		}
	}
}

// event reports progress of kind for p (nil: the whole transfer).
func (r *receiver) event(kind string, p *plan, fileBytes int64) {
	ev := Progress{Time: time.Now(), Kind: kind, Resumed: r.resumed.Load(), Total: r.total}
	if r.disk != nil {
		ev.Sent = r.disk.sent.Load()
	}
	if p != nil {
		ev.File, ev.FileBytes, ev.FileSize = p.entry.Path, fileBytes, p.entry.Size
	}
	r.progress(ev)
}

// fileDone reports p finished (and checked, when sum is not nil).
func (r *receiver) fileDone(p *plan, sum []byte) {
	ev := Progress{Time: time.Now(), Kind: "file-done", Resumed: r.resumed.Load(), Total: r.total, Sent: r.disk.sent.Load(),
		File: p.entry.Path, FileBytes: p.entry.Size, FileSize: p.entry.Size}
	if sum != nil {
		ev.SHA256 = hex.EncodeToString(sum)
	}
	r.progress(ev)
}

// fail stops the disk stage (whose error, if any, is the real cause) and
// tells the sender tell, if not empty.
func (r *receiver) fail(err error, tell string) error {
	if derr := r.disk.drain(); derr != nil {
		err = derr
	}
	if tell != "" {
		sendError(r.rw, errors.New(tell))
	}
	return err
}

// stream reads the sender's frames until it is done, handing verified
// chunks to the disk stage.
func (r *receiver) stream(ctx context.Context) error {
	if len(r.plans) > 0 {
		r.event("file-start", r.plans[0], r.plans[0].offset)
	}
	for {
		if err := ctx.Err(); err != nil {
			return r.fail(err, "")
		}
		buf := <-r.disk.free
		fr, nb, err := readFrame(r.rw, r.m.ChunkSize, buf)
		if err != nil {
			r.disk.free <- nb
			return r.fail(mapIOErr(err), "")
		}
		if fr.typ != frameChunk {
			r.disk.free <- nb
		}
		done, err := r.onFrame(fr, nb)
		if err != nil || done {
			return err
		}
	}
}

// onFrame handles one frame; nb is its buffer, which a chunk hands on to
// the disk stage (every other kind was returned to the pool already).
func (r *receiver) onFrame(fr frame, nb []byte) (done bool, err error) {
	switch fr.typ {
	case frameError:
		return false, r.fail(fmt.Errorf("%w: %s", ErrRemote, Printable(string(fr.payload), 200)), "")
	case frameChunk:
		return false, r.onChunk(fr, nb)
	case frameEnd:
		end, err := parseEnd(fr.payload)
		if err != nil {
			return false, r.fail(err, "")
		}
		if r.cur >= len(r.plans) || int(end.index) != r.plans[r.cur].index || r.expect[r.cur] != r.plans[r.cur].entry.Size {
			return false, r.fail(fmt.Errorf("%w: unexpected end of entry %d", ErrFrame, end.index), "")
		}
		if (end.sum != nil) != r.opts.Checksum {
			return false, r.fail(fmt.Errorf("%w: end of entry %d with %d checksum bytes", ErrFrame, end.index, len(end.sum)), "")
		}
		select {
		case r.disk.jobs <- diskJob{p: r.plans[r.cur], finish: true, sum: end.sum}:
		case err := <-r.disk.errc:
			return false, r.fail(err, "receiver cannot write")
		}
		r.cur++
		if r.cur < len(r.plans) {
			r.event("file-start", r.plans[r.cur], r.plans[r.cur].offset)
		}
		return false, nil
	case frameDone:
		return true, r.onDone()
	}
	return false, r.fail(fmt.Errorf("%w: unexpected %q frame", ErrFrame, fr.typ), "")
}

// onChunk checks a chunk is the next one of the plan and queues it for the
// disk (the secure channel authenticated its bytes).
func (r *receiver) onChunk(fr frame, nb []byte) error {
	c, err := parseChunk(fr.payload)
	if err != nil {
		r.disk.free <- nb
		return r.fail(err, "")
	}
	if r.cur >= len(r.plans) {
		r.disk.free <- nb
		return r.fail(fmt.Errorf("%w: chunk after the last requested file", ErrFrame), "")
	}
	p := r.plans[r.cur]
	restart := c.offset == 0 && r.held[r.cur] > 0 && r.expect[r.cur] == r.held[r.cur]
	if restart { // the sender's file does not start with our part's bytes
		r.resumed.Add(-r.held[r.cur])
		r.expect[r.cur], r.held[r.cur] = 0, 0
	}
	left := p.entry.Size - r.expect[r.cur]
	if int(c.index) != p.index || c.offset != r.expect[r.cur] || len(c.data) == 0 || int64(len(c.data)) > left {
		r.disk.free <- nb
		return r.fail(fmt.Errorf("%w: chunk of entry %d at %d (%d bytes), expected entry %d at %d (at most %d bytes)", ErrFrame, c.index, c.offset, len(c.data), p.index, r.expect[r.cur], left), "")
	}
	r.expect[r.cur] += int64(len(c.data))
	select {
	case r.disk.jobs <- diskJob{p: p, data: c.data, buf: nb, restart: restart}:
		return nil
	case err := <-r.disk.errc:
		return r.fail(err, "receiver cannot write")
	}
}

// onDone checks every file arrived and was written, then acknowledges.
func (r *receiver) onDone() error {
	if r.cur != len(r.plans) {
		return r.fail(fmt.Errorf("%w: sender finished after %d of %d files", ErrFrame, r.cur, len(r.plans)), "")
	}
	if err := r.disk.drain(); err != nil {
		sendError(r.rw, errors.New("file failed verification or could not be written"))
		return err
	}
	if err := writeFrame(r.rw, frameAck, nil); err != nil {
		return mapIOErr(err)
	}
	r.event("done", nil, 0)
	return nil
}

// diskDepth is how many chunks may wait for the disk: a fixed pool of
// buffers bounds memory whatever the file size.
const diskDepth = 4

// diskJob is a chunk to write (restart: at offset 0 of a part that held
// a prefix the sender's file no longer has), or (finish) a file to
// complete, whose SHA-256 must be sum when sum is not nil.
type diskJob struct {
	p       *plan
	data    []byte
	buf     []byte
	restart bool
	finish  bool
	sum     []byte
}

// diskStage writes chunks, extends each file's hash when checksums were
// asked for, records the length received and completes files,
// while the receiver reads and decrypts the next chunks. After its first
// error it only returns buffers.
type diskStage struct {
	r    *receiver
	free chan []byte
	jobs chan diskJob
	errc chan error
	sent atomic.Int64 // written by the stage, read for progress
	// drained is set once jobs is closed (only the receiver's goroutine
	// touches it); drainErr is what the stage reported.
	drained  bool
	drainErr error
}

// startDisk sets r.disk (before the stage runs, which reads it) and starts it.
func startDisk(r *receiver) {
	d := &diskStage{r: r, free: make(chan []byte, diskDepth), jobs: make(chan diskJob, diskDepth), errc: make(chan error, 1)}
	for i := 0; i < diskDepth; i++ {
		d.free <- make([]byte, 0, chunkHeader+r.m.ChunkSize)
	}
	r.disk = d
	go d.run()
}

func (d *diskStage) run() {
	defer close(d.errc)
	var failed error
	for j := range d.jobs {
		if failed == nil {
			failed = d.do(j)
		}
		if j.buf != nil {
			d.free <- j.buf
		}
	}
	if failed != nil {
		d.errc <- failed
	}
}

func (d *diskStage) do(j diskJob) error {
	p, r := j.p, d.r
	if j.finish {
		if err := finish(r.root, p, j.sum, r.opts.Overwrite); err != nil {
			return err
		}
		r.fileDone(p, j.sum)
		return nil
	}
	if j.restart { // openPlan below cuts the part to offset 0
		p.offset, p.resumed, p.saved = 0, 0, 0
		p.hash.Reset()
		if p.part != nil {
			p.part.Close()
			p.part = nil
		}
	}
	if p.part == nil {
		if err := openPlan(r.root, p); err != nil {
			return mapIOErr(err)
		}
	}
	if _, err := p.part.WriteAt(j.data, p.offset); err != nil {
		return mapIOErr(err)
	}
	if r.opts.Checksum {
		p.hash.Write(j.data)
	}
	p.offset += int64(len(j.data))
	if err := checkpoint(r.root, p); err != nil {
		return mapIOErr(err)
	}
	d.sent.Add(int64(len(j.data)))
	r.event("chunk", p, p.offset)
	return nil
}

// drain stops the stage and returns its error; later calls return the same.
func (d *diskStage) drain() error {
	if !d.drained {
		close(d.jobs)
		d.drained = true
		d.drainErr = <-d.errc
	}
	return d.drainErr
}
