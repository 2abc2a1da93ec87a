package webhookd

import (
	"errors"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestConvertDecodesBadRequest(t *testing.T) {
	st, err := status.New(codes.InvalidArgument, "invalid webhook").WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "url", Description: "required"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := convert(st.Err())
	var werr *Error
	if !errors.As(got, &werr) {
		t.Fatalf("convert returned %T, want *Error", got)
	}
	if werr.Code != codes.InvalidArgument || werr.Message != "invalid webhook" {
		t.Errorf("got %v %q", werr.Code, werr.Message)
	}
	if v, ok := werr.Violation("url"); !ok || v.Description != "required" {
		t.Errorf("Violation(url) = %+v, %v", v, ok)
	}
	if status.Code(got) != codes.InvalidArgument {
		t.Errorf("status.Code = %v", status.Code(got))
	}
	if want := "webhookd: InvalidArgument: invalid webhook (url: required)"; got.Error() != want {
		t.Errorf("Error() = %q, want %q", got.Error(), want)
	}
}

func TestConvertWithoutDetails(t *testing.T) {
	got := convert(status.Error(codes.NotFound, "webhook not found"))
	var werr *Error
	if !errors.As(got, &werr) || werr.Code != codes.NotFound || len(werr.FieldViolations) != 0 {
		t.Fatalf("got %#v", got)
	}
	if convert(nil) != nil {
		t.Error("convert(nil) != nil")
	}
}
