// Package web is machsend's browser helper (machsend web), in the role
// Yahoo BrowserPlus played for Machsend in 2009: a page in the user's
// browser cannot open raw TCP sockets, so a small local program does the
// hole punching for it.
//
// A Helper serves one page on 127.0.0.1. There the user drops or picks
// files and folders, gets the share link and its QR code, and watches each
// recipient's progress and path; or opens a link someone sent and
// downloads all or some of what it offers. The sessions are the library's
// (session.Share, Sharing.ServeEach, session.Fetch): the helper only turns
// their events into the page's state.
//
// Any web page on the internet can make the browser send requests to
// 127.0.0.1, so the helper trusts no request by where it comes from
// (guard.go): it listens on loopback only; every request must carry the
// per-launch token, given once in the URL the helper opens and then kept
// in a same-site cookie; the Host header must name the helper itself (DNS
// rebinding) and a request's Origin must be the helper's own (cross-site
// requests); it answers no CORS preflight and sends no CORS header; every
// answer carries a strict Content-Security-Policy. A page cannot name a
// path on the user's disk: what is shared is what the page uploaded into
// the helper's private staging folder, and downloads go only into the
// folder the user gave on the command line.
package web
