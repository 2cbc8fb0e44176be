// Command machsend shares files peer to peer through NATs (send, get, and
// the browser helper web), and exposes the traversal machinery for
// experiments (punch, natcheck).
//
//	machsend send [--server HOST:PORT] PATH...   prints a link, serves the files
//	machsend get LINK [-o DIR]                   downloads them (LINK, - for stdin, or $MACHSEND_LINK)
//	machsend web [--server HOST:PORT] [LINK]     the same in the browser: a page on 127.0.0.1
//	machsend punch --server HOST:PORT [--session ID] --method M --json
//	machsend natcheck --server HOST:PORT [--json] [--profile FILE] [--quick]
//
// machsend help COMMAND describes each; machsend man prints the manual page.
package main

import (
	"github.com/machsend/machsend/internal/cli"
)

// version is stamped by make dist (-ldflags -X main.version=...).
var version string

// program is machsend's command line.
var program = &cli.Program{
	Name:    "machsend",
	Summary: "share files peer to peer, through NATs",
	Version: version,
	Detail: `A link is http://SERVER:PORT/s/SESSION#SECRET (or machsend://SERVER:PORT/SESSION#SECRET);
the part after '#' never reaches the server. send --code gives a short code instead
(machsend get 7-guitar-orbit). The rendezvous server is --server HOST:PORT,
$MACHSEND_SERVER, or server = HOST:PORT in ~/.config/machsend/config.`,
	Commands: []*cli.Command{
		{Name: "send", Args: "PATH...", Summary: "share files and folders: print a link and serve whoever opens it", Setup: setupSend},
		{Name: "get", Args: "[LINK|CODE|-]", Summary: "download what a link or a short code shares (as argument, on stdin with -, or in $MACHSEND_LINK)", Setup: setupGet},
		{Name: "web", Args: "[LINK]", Summary: "the browser helper: a page on 127.0.0.1 to share files and open links", Setup: setupWeb},
		{Name: "punch", Summary: "only establish a connection through the NATs and report how (experiments)", Setup: setupPunch},
		{Name: "natcheck", Summary: "measure the NAT in front of this host from the outside, with a verdict", Setup: setupNATCheck},
	},
}

func main() {
	program.Main()
}
