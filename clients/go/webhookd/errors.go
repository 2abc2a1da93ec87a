package webhookd

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// FieldViolation is one invalid field of a request (google.rpc.BadRequest.FieldViolation).
type FieldViolation struct {
	Field       string // path of the field, e.g. "url"
	Description string // why the value is invalid
	Reason      string
}

// Error is a failed call. Get it with errors.As; status.Code(err) and status.FromError(err) also
// work on it.
//
//	var werr *webhookd.Error
//	if errors.As(err, &werr) && werr.Code == codes.InvalidArgument {
//		for _, v := range werr.FieldViolations { fmt.Println(v.Field, v.Description) }
//	}
type Error struct {
	Code            codes.Code
	Message         string
	FieldViolations []FieldViolation // from google.rpc.BadRequest (INVALID_ARGUMENT)
	Reason          string           // google.rpc.ErrorInfo reason (auth errors)
	status          *status.Status
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "webhookd: %s: %s", e.Code, e.Message)
	// webhookd's messages usually list the violations already.
	listed := true
	for _, v := range e.FieldViolations {
		listed = listed && strings.Contains(e.Message, v.Field+": "+v.Description)
	}
	if listed {
		return b.String()
	}
	for i, v := range e.FieldViolations {
		if i == 0 {
			b.WriteString(" (")
		} else {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %s", v.Field, v.Description)
		if i == len(e.FieldViolations)-1 {
			b.WriteString(")")
		}
	}
	return b.String()
}

// GRPCStatus returns the underlying status, so that status.Code and status.FromError see it.
func (e *Error) GRPCStatus() *status.Status { return e.status }

// Violation returns the violation of field, if any.
func (e *Error) Violation(field string) (FieldViolation, bool) {
	for _, v := range e.FieldViolations {
		if v.Field == field {
			return v, true
		}
	}
	return FieldViolation{}, false
}

// FromStatus converts a gRPC status into an *Error, decoding its details.
func FromStatus(st *status.Status) *Error {
	e := &Error{Code: st.Code(), Message: st.Message(), status: st}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				e.FieldViolations = append(e.FieldViolations, FieldViolation{Field: v.GetField(), Description: v.GetDescription(), Reason: v.GetReason()})
			}
		case *errdetails.ErrorInfo:
			e.Reason = d.GetReason()
		}
	}
	return e
}

// convert turns a gRPC error into an *Error (nil stays nil; context errors stay as they are).
func convert(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	return FromStatus(st)
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }
