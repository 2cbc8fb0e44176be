// Package transfer is machsend's file transfer: the link, the secure
// channel, the manifest and the protocol that moves files between a sender
// and a receiver over the connection traversal established.
//
// A Link (machsend://SERVER/SESSION#SECRET) names the rendezvous server and
// session; its secret, after '#', never reaches the server. Secure runs a
// Noise NNpsk0 handshake keyed by the secret (mutual authentication, forward
// secrecy) and then carries AES-256-GCM records; a peer that cannot prove the
// secret is refused, and any byte changed in transit fails a record's
// authentication (ErrTampered).
//
// The sender sends a Manifest (paths, sizes, modes, SHA-256 of each file),
// the receiver answers with what it still needs (resuming from the verified
// prefix of each .part file), and the sender streams those files one after
// another in chunks, each with its own SHA-256. The receiver writes into
// NAME.part, records the verified length in NAME.part.json after every chunk,
// checks the whole-file hash, and only then renames the file into place.
// Names from the wire are validated (CleanPath, Manifest.Validate) and every
// write goes through an os.Root that refuses symlinks, so a hostile manifest
// cannot touch anything outside the destination.
package transfer
