// A runtime in miniature on the real libcni (Debian's
// golang-github-appc-cni-dev): validates a conflist (VERSION negotiation),
// then runs one verb for one container, as containerd and CRI-O do.
//
//	driver add|check|del CONFLIST CONTAINER_ID NETNS IFNAME PLUGIN_DIR CACHE_DIR [PORT_MAPPINGS_JSON]
//
// ADD prints the result as JSON on stdout; errors go to stderr, exit 1.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/containernetworking/cni/libcni"
)

func main() {
	if len(os.Args) < 8 {
		fail(fmt.Errorf("usage: driver add|check|del CONFLIST ID NETNS IFNAME PLUGIN_DIR CACHE_DIR [PORTS]"))
	}
	verb, conflist, id, netns, ifname, pluginDir, cacheDir :=
		os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5], os.Args[6], os.Args[7]
	list, err := libcni.ConfListFromFile(conflist)
	if err != nil {
		fail(err)
	}
	cni := libcni.NewCNIConfigWithCacheDir([]string{pluginDir}, cacheDir, nil)
	ctx := context.Background()
	if _, err := cni.ValidateNetworkList(ctx, list); err != nil {
		fail(fmt.Errorf("validate: %w", err))
	}
	rt := &libcni.RuntimeConf{
		ContainerID:    id,
		NetNS:          netns,
		IfName:         ifname,
		Args:           [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAME", "driver"}},
		CapabilityArgs: map[string]interface{}{},
	}
	if len(os.Args) > 8 {
		var ports []map[string]interface{}
		if err := json.Unmarshal([]byte(os.Args[8]), &ports); err != nil {
			fail(err)
		}
		rt.CapabilityArgs["portMappings"] = ports
	}
	switch verb {
	case "add":
		res, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail(err)
		}
		if err := res.Print(); err != nil {
			fail(err)
		}
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			fail(err)
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			fail(err)
		}
	default:
		fail(fmt.Errorf("unknown verb %q", verb))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
