// Command registry is the image registry the kind provider runs next to its nodes (in a FROM
// scratch image, on the kind Docker network): go-containerregistry's registry, in memory, for
// the lifetime of one cluster. The e2e scenario pushes the images it builds there, so the
// image gate on the host and the kubelet in the node pull the very same manifests.
//
//	registry [-addr :5000]
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	addr := flag.String("addr", ":5000", "address to listen on")
	flag.Parse()

	srv := &http.Server{Addr: *addr, Handler: registry.New(), ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "registry:", err)
		os.Exit(1)
	}
}
