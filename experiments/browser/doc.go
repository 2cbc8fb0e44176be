// Package browser runs Machsend's browser experience end to end in a NAT
// lab: real headless Chromium (Debian's chromium, driven through the
// DevTools protocol with chromedp) on two lab hosts behind NATs, each using
// the real machsend web helper on its own 127.0.0.1, and the real
// rendezvous server on the lab's internet.
//
// On host A the sender's browser picks two files and a folder through the
// page's file inputs (DOM.setFileInputFiles: the same change event a user's
// pick makes, carrying the files), shares them and reads the link from the
// page. On host B the recipient's browser opens that http link: the
// rendezvous server's landing page, whose "Open in machsend" link is the
// machsend:// form a desktop hands to the registered handler; the run
// starts `machsend web LINK` with it, as the handler's desktop entry does,
// and the browser opens the helper's page, sees the list, downloads
// everything and waits for it to finish. The files must arrive
// byte-identical, and both pages must show the path the helpers' events
// report. Screenshots of both pages at each step are saved.
//
// Each browser runs inside its host's network namespace (through `ip netns
// exec`), so its 127.0.0.1 is that host's, as it would be on two real
// computers; chromedp talks to it over a pipe, which needs no network.
// The browser's processes are in a process group of their own, killed by
// its id when the run ends.
package browser
