// A Go agent of the client matrix: GET a URL with net/http's default client, nothing set up for a
// proxy (http.ProxyFromEnvironment reads HTTPS_PROXY, but never for a loopback host).
//
//	go_client URL
//
// Prints "STATUS BODY" and exits 0, or the error and how long it took ("failed after N s") and exits 1.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	started := time.Now()
	client := &http.Client{Timeout: 20 * time.Second}
	response, err := client.Get(os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "%v\nfailed after %.3f s\n", err, time.Since(started).Seconds())
		os.Exit(1)
	}
	defer response.Body.Close()
	body, err := io.ReadAll(response.Body)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%v\n", err)
		os.Exit(1)
	}
	fmt.Printf("%d %s\n", response.StatusCode, body)
}
