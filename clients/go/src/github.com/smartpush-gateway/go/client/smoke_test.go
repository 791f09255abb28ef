package client

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	gatewayv1 "github.com/smartpush-gateway/go/smartpush/gateway/v1"
	"google.golang.org/grpc/codes"
)

// The demo template the built-in emulator knows (the seed example's id).
const demoTemplate = "49061553-27c7-4471-9145-d8d6137c57da"

func request(button string) *gatewayv1.SendRequest {
	return &gatewayv1.SendRequest{
		ProjectId: "go-smoke-project",
		Sub:       "go-smoke-user",
		Delivery: &gatewayv1.DeliveryConfig{
			DeliveryMode: gatewayv1.DeliveryMode_DELIVERY_MODE_BROADCAST,
			Destinations: []*gatewayv1.Destination{
				{Surface: gatewayv1.Surface_SURFACE_COMPANION},
			},
			TemplateContent: &gatewayv1.TemplateContent{
				Id: demoTemplate,
				Parameters: &gatewayv1.TemplateContent_MobileAppParameters{
					MobileAppParameters: &gatewayv1.MobileAppParameters{ButtonText: button},
				},
			},
		},
	}
}

// TestSmoke runs against a gateway started with the emulator (GATEWAY_TARGET, set by tests/clients).
func TestSmoke(t *testing.T) {
	target := os.Getenv("GATEWAY_TARGET")
	if target == "" {
		t.Skip("GATEWAY_TARGET not set; run through `make test`")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := Dial(ctx, target, Options{})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	stub := gatewayv1.NewPushServiceClient(conn)

	ok := request("Open")
	ok.Delivery.Destinations = append(ok.Delivery.Destinations, &gatewayv1.Destination{Surface: gatewayv1.Surface_SURFACE_TV})
	ok.Delivery.TemplateContent.Parameters = nil
	resp, err := stub.Send(ctx, ok)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	if len(resp.GetResults()) != 2 {
		t.Fatalf("want 2 results, got %v", resp.GetResults())
	}
	for i, want := range []gatewayv1.Surface{gatewayv1.Surface_SURFACE_COMPANION, gatewayv1.Surface_SURFACE_TV} {
		r := resp.GetResults()[i]
		if r.GetSurface() != want || r.GetStatusCode() != 0 || !r.GetReported() {
			t.Fatalf("result %d: %v", i, r)
		}
	}
	if len(resp.GetRqUid()) != 36 {
		t.Fatalf("rq_uid %q", resp.GetRqUid())
	}

	_, err = stub.Send(ctx, request(strings.Repeat("x", 31)))
	gerr := Decode(err)
	if gerr == nil || gerr.Code != codes.InvalidArgument {
		t.Fatalf("want InvalidArgument, got %v", err)
	}
	if gerr.Reason != gatewayv1.ErrorReason_ERROR_REASON_INVALID_REQUEST || gerr.Domain != "smartpush.gateway" {
		t.Fatalf("reason %v domain %q", gerr.Reason, gerr.Domain)
	}
	if len(gerr.FieldViolations) != 1 ||
		gerr.FieldViolations[0].Field != "delivery.template_content.mobile_app_parameters.button_text" {
		t.Fatalf("violations %v", gerr.FieldViolations)
	}
	if gerr.RqUID() == "" {
		t.Fatal("no rq_uid in ErrorInfo metadata")
	}
}
