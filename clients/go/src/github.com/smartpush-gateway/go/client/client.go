// Package client is a thin helper around the generated smartpush-gateway stubs:
// a dial function with sensible defaults and a decoder for the gateway's rich errors.
package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	gatewayv1 "github.com/smartpush-gateway/go/smartpush/gateway/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// Options for Dial. A nil TLS config means plaintext (loopback, or a mesh that terminates TLS).
type Options struct {
	TLS *tls.Config
	// Keepalive ping interval; zero means 60s.
	Keepalive time.Duration
}

// Dial connects to a gateway. Use several connections (or a load-balancing resolver)
// to spread calls over several gateway processes: one HTTP/2 connection sticks to one.
func Dial(ctx context.Context, target string, opts Options) (*grpc.ClientConn, error) {
	interval := opts.Keepalive
	if interval == 0 {
		interval = 60 * time.Second
	}
	dialOpts := []grpc.DialOption{
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: interval, Timeout: 20 * time.Second}),
	}
	if opts.TLS != nil {
		dialOpts = append(dialOpts, grpc.WithTransportCredentials(credentials.NewTLS(opts.TLS)))
	} else {
		dialOpts = append(dialOpts, grpc.WithInsecure()) // grpc-go 1.33 (Debian) predates credentials/insecure
	}
	return grpc.DialContext(ctx, target, dialOpts...)
}

// FieldViolation is one broken field rule; Field is the proto field path.
type FieldViolation struct {
	Field       string
	Description string
}

// GatewayError is a failed call with its google.rpc details decoded.
type GatewayError struct {
	Code            codes.Code
	Message         string
	Reason          gatewayv1.ErrorReason
	ReasonName      string
	Domain          string
	Metadata        map[string]string
	FieldViolations []FieldViolation
	RetryAfter      *time.Duration
	Quota           []FieldViolation // subject, description
}

func (e *GatewayError) Error() string {
	return fmt.Sprintf("%s: %s (%s)", e.Code, e.Message, e.ReasonName)
}

// RqUID is the request id the gateway sent upstream, for support and log lookup.
func (e *GatewayError) RqUID() string { return e.Metadata["rq_uid"] }

// StatusCode is SmartPush's numeric status code, when SmartPush answered with one.
func (e *GatewayError) StatusCode() (int, bool) {
	raw, ok := e.Metadata["status_code"]
	if !ok {
		return 0, false
	}
	var n int
	_, err := fmt.Sscanf(raw, "%d", &n)
	return n, err == nil
}

// Decode turns an error from a gateway call into a *GatewayError (nil for nil).
func Decode(err error) *GatewayError {
	if err == nil {
		return nil
	}
	st, _ := status.FromError(err)
	out := &GatewayError{Code: st.Code(), Message: st.Message(), Metadata: map[string]string{}}
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			out.ReasonName, out.Domain = d.GetReason(), d.GetDomain()
			out.Reason = gatewayv1.ErrorReason(gatewayv1.ErrorReason_value[d.GetReason()])
			for k, v := range d.GetMetadata() {
				out.Metadata[k] = v
			}
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				out.FieldViolations = append(out.FieldViolations, FieldViolation{v.GetField(), v.GetDescription()})
			}
		case *errdetails.RetryInfo:
			delay := time.Duration(d.GetRetryDelay().GetSeconds())*time.Second + time.Duration(d.GetRetryDelay().GetNanos())
			out.RetryAfter = &delay
		case *errdetails.QuotaFailure:
			for _, v := range d.GetViolations() {
				out.Quota = append(out.Quota, FieldViolation{v.GetSubject(), v.GetDescription()})
			}
		}
	}
	return out
}
