// Command smartpush-send sends one push through a smartpush-gateway: an example of the Go client.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/smartpush-gateway/go/client"
	gatewayv1 "github.com/smartpush-gateway/go/smartpush/gateway/v1"
)

func main() {
	target := flag.String("target", "127.0.0.1:50051", "gateway address")
	project := flag.String("project", "demo-project", "smartapp project id")
	sub := flag.String("sub", "demo-user", "recipient sub")
	template := flag.String("template", "49061553-27c7-4471-9145-d8d6137c57da", "template id")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := client.Dial(ctx, *target, client.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		os.Exit(1)
	}
	defer conn.Close()
	resp, err := gatewayv1.NewPushServiceClient(conn).Send(ctx, &gatewayv1.SendRequest{
		ProjectId: *project,
		Sub:       *sub,
		Delivery: &gatewayv1.DeliveryConfig{
			DeliveryMode:    gatewayv1.DeliveryMode_DELIVERY_MODE_BROADCAST,
			Destinations:    []*gatewayv1.Destination{{Surface: gatewayv1.Surface_SURFACE_COMPANION}},
			TemplateContent: &gatewayv1.TemplateContent{Id: *template},
		},
	})
	if gerr := client.Decode(err); gerr != nil {
		fmt.Fprintf(os.Stderr, "%v rq_uid=%s violations=%v\n", gerr, gerr.RqUID(), gerr.FieldViolations)
		os.Exit(1)
	}
	for _, r := range resp.GetResults() {
		fmt.Printf("%s status=%d %s\n", r.GetSurface(), r.GetStatusCode(), r.GetDescription())
	}
}
