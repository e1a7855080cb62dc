// Command ctnet-example runs a whole ctnet scenario through the Go client:
// a network, a sandbox with a published port, connect and disconnect, one
// expected error, and cleanup. It pauses once the port is published, so it
// can be reached from outside, and goes on when a line arrives on stdin.
// Each step is printed as one JSON line.
//
//	ctnet-example -unix /run/ctnet/ctnet.sock
//	ctnet-example -tls ctnet.example:7443 -ca ca.pem -cert me.pem -key me-key.pem
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ctnet/ctnet/clients/go/ctnet"
	pb "github.com/ctnet/ctnet/clients/go/ctnetv1"
)

func say(step map[string]interface{}) {
	out, _ := json.Marshal(step)
	fmt.Println(string(out))
}

func names(ifaces []*pb.Interface) []string {
	out := []string{}
	for _, i := range ifaces {
		out = append(out, i.Name)
	}
	return out
}

func dial(ctx context.Context) (*ctnet.Client, error) {
	unix := flag.Lookup("unix").Value.String()
	if unix != "" {
		return ctnet.DialUnix(ctx, unix)
	}
	get := func(n string) string { return flag.Lookup(n).Value.String() }
	return ctnet.DialTLS(ctx, get("tls"), get("ca"), get("cert"), get("key"), get("server-name"))
}

func run() error {
	flag.String("unix", "", "ctnet-api's Unix socket")
	flag.String("tls", "", "ctnet-api's TLS listener, host:port")
	flag.String("ca", "", "CA certificate (PEM) for -tls")
	flag.String("cert", "", "client certificate (PEM) for -tls")
	flag.String("key", "", "client key (PEM) for -tls")
	flag.String("server-name", "localhost", "name on the server's certificate")
	prefix := flag.String("prefix", "goex", "names of what the scenario makes")
	subnet := flag.String("subnet", "172.31.92.0/24", "the network's subnet")
	subnet2 := flag.String("subnet2", "172.31.93.0/24", "the second network's subnet")
	hostPort := flag.Int("host-port", 18080, "host port published to the sandbox's port 80")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	net, net2, web := *prefix+"-net", *prefix+"-net2", *prefix+"-web"

	me, err := c.Maintenance.WhoAmI(ctx, &pb.WhoAmIRequest{})
	if err != nil {
		return err
	}
	say(map[string]interface{}{"step": "whoami", "name": me.Name})
	n, err := c.CreateNetwork(ctx, net, *subnet)
	if err != nil {
		return err
	}
	say(map[string]interface{}{"step": "network", "id": n.Id, "subnet": n.Subnet, "gateway": n.Gateway})
	sb, err := c.CreateBridgeSandbox(ctx, web, []string{net}, []string{fmt.Sprintf("%d:80", *hostPort)})
	if err != nil {
		return err
	}
	say(map[string]interface{}{"step": "published", "id": sb.Id, "netns": sb.NetnsPath,
		"address": sb.Interfaces[0].Address, "host_port": sb.Ports[0].HostPort})
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return fmt.Errorf("waiting on stdin: %w", err)
	}
	if _, err := c.CreateNetwork(ctx, net2, *subnet2); err != nil {
		return err
	}
	if sb, err = c.Connect(ctx, web, net2); err != nil {
		return err
	}
	say(map[string]interface{}{"step": "connected", "interfaces": names(sb.Interfaces)})
	if sb, err = c.Disconnect(ctx, web, net2); err != nil {
		return err
	}
	say(map[string]interface{}{"step": "disconnected", "interfaces": names(sb.Interfaces)})
	_, err = c.Networks.GetNetwork(ctx, &pb.GetNetworkRequest{Network: *prefix + "-missing"})
	if ctnet.Code(err) != codes.NotFound {
		return fmt.Errorf("a missing network: got %v, want NotFound", err)
	}
	say(map[string]interface{}{"step": "error", "code": "NOT_FOUND", "message": status.Convert(err).Message()})
	if err := c.DeleteSandbox(ctx, web); err != nil {
		return err
	}
	for _, name := range []string{net2, net} {
		if err := c.DeleteNetwork(ctx, name); err != nil {
			return err
		}
	}
	list, err := c.Sandboxes.ListSandboxes(ctx, &pb.ListSandboxesRequest{})
	if err != nil {
		return err
	}
	left := []string{}
	for _, s := range list.Sandboxes {
		if s.Name == web {
			left = append(left, s.Name)
		}
	}
	say(map[string]interface{}{"step": "deleted", "left": left})
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ctnet-example:", err)
		os.Exit(1)
	}
}
