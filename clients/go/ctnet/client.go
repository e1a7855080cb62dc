// Package ctnet dials ctnet-api (ctnet.v1 over gRPC) and wraps the stubs
// generated into ctnetv1 with helpers for the common calls.
//
//	c, err := ctnet.DialUnix(ctx, "/run/ctnet/ctnet.sock")
//	n, err := c.Networks.CreateNetwork(ctx, &ctnetv1.CreateNetworkRequest{Name: "web", Subnet: "172.31.5.0/24"})
//
// A failed call returns a gRPC status error: ctnet.Code(err) is its code
// (codes.NotFound, codes.InvalidArgument, ...) and status.Convert(err).Message()
// the server's message.
package ctnet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	pb "github.com/ctnet/ctnet/clients/go/ctnetv1"
)

// Client is one connection to ctnet-api with its three services.
type Client struct {
	conn        *grpc.ClientConn
	Networks    pb.NetworkServiceClient
	Sandboxes   pb.SandboxServiceClient
	Maintenance pb.MaintenanceServiceClient
}

func newClient(conn *grpc.ClientConn) *Client {
	return &Client{
		conn:        conn,
		Networks:    pb.NewNetworkServiceClient(conn),
		Sandboxes:   pb.NewSandboxServiceClient(conn),
		Maintenance: pb.NewMaintenanceServiceClient(conn),
	}
}

// DialUnix connects to ctnet-api's Unix socket; the server knows the caller
// by its uid. The HTTP/2 :authority is pinned to "localhost": grpc-go 1.33
// sends that for a unix:// target already (tested), but a client that sends
// the socket path instead (grpcio does) is refused by ctnet's HTTP/2 stack.
func DialUnix(ctx context.Context, path string) (*Client, error) {
	conn, err := grpc.DialContext(ctx, "unix://"+path,
		grpc.WithInsecure(), grpc.WithAuthority("localhost"), grpc.WithBlock())
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", path, err)
	}
	return newClient(conn), nil
}

// DialTLS connects to ctnet-api's TLS listener (host:port) with a client
// certificate. caFile, certFile and keyFile are PEM files; serverName is the
// name the server's certificate must carry (empty: the address's host).
func DialTLS(ctx context.Context, addr, caFile, certFile, keyFile, serverName string) (*Client, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		return nil, errors.New("CA file: no PEM certificate in it")
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      roots,
		ServerName:   serverName,
		MinVersion:   tls.VersionTLS12,
	}
	conn, err := grpc.DialContext(ctx, addr,
		grpc.WithTransportCredentials(credentials.NewTLS(cfg)), grpc.WithBlock())
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", addr, err)
	}
	return newClient(conn), nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Code is the gRPC code of an error a call returned (codes.OK for nil).
func Code(err error) codes.Code { return status.Code(err) }

// CreateNetwork makes a bridge network on an IPv4 subnet.
func (c *Client) CreateNetwork(ctx context.Context, name, subnet string) (*pb.Network, error) {
	return c.Networks.CreateNetwork(ctx, &pb.CreateNetworkRequest{Name: name, Subnet: subnet})
}

// DeleteNetwork deletes a network by id or name.
func (c *Client) DeleteNetwork(ctx context.Context, network string) error {
	_, err := c.Networks.DeleteNetwork(ctx, &pb.DeleteNetworkRequest{Network: network})
	return err
}

// CreateBridgeSandbox makes a bridge-mode sandbox on the given networks (none:
// the default network "bridge") with Docker's -p forms in publish.
func (c *Client) CreateBridgeSandbox(ctx context.Context, name string, networks, publish []string) (*pb.Sandbox, error) {
	bridge := &pb.BridgeMode{}
	for _, n := range networks {
		bridge.Networks = append(bridge.Networks, &pb.NetworkAttachment{Network: n})
	}
	req := &pb.CreateSandboxRequest{
		Name:    &name,
		Mode:    &pb.CreateSandboxRequest_Bridge{Bridge: bridge},
		Publish: publish,
	}
	return c.Sandboxes.CreateSandbox(ctx, req)
}

// DeleteSandbox deletes a sandbox by id or name.
func (c *Client) DeleteSandbox(ctx context.Context, sandbox string) error {
	_, err := c.Sandboxes.DeleteSandbox(ctx, &pb.DeleteSandboxRequest{Sandbox: sandbox})
	return err
}

// Connect attaches a bridge-mode sandbox to one more network.
func (c *Client) Connect(ctx context.Context, sandbox, network string) (*pb.Sandbox, error) {
	return c.Sandboxes.Connect(ctx, &pb.ConnectRequest{Sandbox: sandbox, Network: network})
}

// Disconnect detaches a sandbox from a network.
func (c *Client) Disconnect(ctx context.Context, sandbox, network string) (*pb.Sandbox, error) {
	return c.Sandboxes.Disconnect(ctx, &pb.DisconnectRequest{Sandbox: sandbox, Network: network})
}
