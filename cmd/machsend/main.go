// Command machsend shares files peer to peer through NATs (send, get), and
// exposes the traversal machinery for experiments (punch, natcheck).
//
//	machsend send --server HOST:PORT PATH...      prints a link, serves the files
//	machsend get LINK [-o DIR]                  downloads them (LINK, - for stdin, or $MACHSEND_LINK)
//	machsend web [--server HOST:PORT] [LINK]    the same in the browser: a page on 127.0.0.1
//	machsend punch --server HOST:PORT [--session ID] --method M --json
//	machsend natcheck --server HOST:PORT [--json] [--profile FILE] [--quick]
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

const usage = `machsend: share files peer to peer, through NATs

usage:
  machsend send [--server HOST:PORT] [--keep [--at-once N]] [--json] PATH...
  machsend get LINK|- [-o DIR] [--list] [--only PATTERN]... [--overwrite] [--json]
  machsend web [--server HOST:PORT] [-o DIR] [--no-open] [LINK]
  machsend web --install-handler
  machsend punch --server HOST:PORT [--session ID] [--method M] [--json]
  machsend natcheck --server HOST:PORT [--json] [--profile FILE] [--name N] [--max-transitory D] [--quick]
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "send":
		err = cmdSend(os.Args[2:])
	case "get":
		err = cmdGet(os.Args[2:])
	case "web":
		err = cmdWeb(os.Args[2:])
	case "punch":
		err = cmdPunch(os.Args[2:])
	case "natcheck":
		err = cmdNATCheck(os.Args[2:])
	case "help", "-h", "--help":
		fmt.Print(usage)
		return
	default:
		err = fmt.Errorf("unknown command %q (see machsend help)", os.Args[1])
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "machsend: %v\n", err)
		os.Exit(1)
	}
}
