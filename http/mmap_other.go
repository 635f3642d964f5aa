//go:build !linux

package http

import "errors"

// mapAnon is not used elsewhere than on Linux: stages are heap buffers.
func mapAnon(int) ([]byte, error) { return nil, errors.ErrUnsupported }

func unmap([]byte) {}
