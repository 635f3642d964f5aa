package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"time"
)

// rawConn is one worker's kept-alive HTTP/1.1 connection, driven by hand:
// the request is one write of bytes built in place, the response is parsed
// just enough to find its status and body (Content-Length or chunked).
//
// A net/http client request costs 40-60 µs of CPU here, as much as the
// server spends on a point query, and the load generator shares the
// server's two cores; this costs a few µs, so the figures measure the
// server rather than the client (wrk and similar tools do the same). The
// -client nethttp flag switches back to net/http for comparison. It sends
// no credentials and follows no redirects: rqbench drives nodes without
// -auth, and such responses count as errors.
type rawConn struct {
	host string // host:port the connection goes to
	conn net.Conn
	br   *bufio.Reader
	req  []byte
}

// exchangeTimeout bounds one request and its response.
const exchangeTimeout = time.Minute

// errBadResponse is a response rqbench cannot parse.
var errBadResponse = errors.New("malformed HTTP response")

// roundTrip sends one request on c (dialling first if needed) and appends
// the response body to body. A failed exchange closes the connection; the
// next call dials again.
func (c *rawConn) roundTrip(method string, u *url.URL, payload []byte, body *bytes.Buffer) (status int, err error) {
	if c.conn != nil && c.host != u.Host {
		c.close()
	}
	if c.conn == nil {
		conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
		if err != nil {
			return 0, err
		}
		c.conn, c.host = conn, u.Host
		if c.br == nil {
			c.br = bufio.NewReaderSize(conn, 16<<10)
		} else {
			c.br.Reset(conn)
		}
	}
	status, closeAfter, err := c.exchange(method, u, payload, body)
	if err != nil || closeAfter {
		c.close()
	}
	return status, err
}

func (c *rawConn) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

func (c *rawConn) exchange(method string, u *url.URL, payload []byte, body *bytes.Buffer) (status int, closeAfter bool, err error) {
	r := c.req[:0]
	r = append(r, method...)
	r = append(r, ' ')
	r = append(r, u.EscapedPath()...)
	if u.RawQuery != "" {
		r = append(r, '?')
		r = append(r, u.RawQuery...)
	}
	r = append(r, " HTTP/1.1\r\nHost: "...)
	r = append(r, u.Host...)
	r = append(r, "\r\nUser-Agent: rqbench\r\n"...)
	if payload != nil {
		r = append(r, "Content-Type: application/json\r\nContent-Length: "...)
		r = strconv.AppendInt(r, int64(len(payload)), 10)
		r = append(r, "\r\n"...)
	}
	r = append(r, "\r\n"...)
	r = append(r, payload...)
	c.req = r
	// A stuck server fails the request instead of hanging the run (as
	// ResponseHeaderTimeout does for the net/http client).
	if err := c.conn.SetDeadline(time.Now().Add(exchangeTimeout)); err != nil {
		return 0, true, err
	}
	if _, err := c.conn.Write(r); err != nil {
		return 0, true, err
	}

	for {
		line, err := c.line()
		if err != nil {
			return 0, true, err
		}
		// "HTTP/1.1 200 OK"
		if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
			return 0, true, fmt.Errorf("%w: status line %q", errBadResponse, line)
		}
		if status, err = strconv.Atoi(string(line[9:12])); err != nil {
			return 0, true, fmt.Errorf("%w: status line %q", errBadResponse, line)
		}
		if status >= 200 {
			break
		}
		// An interim (1xx) response: skip its headers, read the real one.
		if err := c.headers(func(k, v []byte) error { return nil }); err != nil {
			return 0, true, err
		}
	}
	length, chunked := int64(-1), false
	err = c.headers(func(k, v []byte) error {
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			var err error
			if length, err = strconv.ParseInt(string(v), 10, 64); err != nil || length < 0 {
				return fmt.Errorf("%w: Content-Length %q", errBadResponse, v)
			}
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(v, []byte("chunked"))
		case bytes.EqualFold(k, []byte("Connection")):
			closeAfter = bytes.EqualFold(v, []byte("close"))
		}
		return nil
	})
	if err != nil {
		return 0, true, err
	}
	switch {
	case method == "HEAD" || status == 204 || status == 304:
		// No body, whatever the headers say.
	case chunked:
		err = c.readChunked(body)
	case length >= 0:
		err = c.readN(body, length)
	default:
		// No length: the body runs to the end of the connection.
		_, err = body.ReadFrom(c.br)
		closeAfter = true
	}
	if err != nil {
		return 0, true, err
	}
	return status, closeAfter, nil
}

// headers reads header lines up to the empty one, passing each name and
// (trimmed) value to fn.
func (c *rawConn) headers(fn func(k, v []byte) error) error {
	for {
		h, err := c.line()
		if err != nil {
			return err
		}
		if len(h) == 0 {
			return nil
		}
		k, v, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return fmt.Errorf("%w: header %q", errBadResponse, h)
		}
		if err := fn(k, bytes.TrimSpace(v)); err != nil {
			return err
		}
	}
}

// line reads one CRLF-terminated line without its terminator.
func (c *rawConn) line() ([]byte, error) {
	l, err := c.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("%w: line longer than %d bytes", errBadResponse, c.br.Size())
		}
		return nil, err
	}
	return bytes.TrimRight(l, "\r\n"), nil
}

func (c *rawConn) readChunked(body *bytes.Buffer) error {
	for {
		l, err := c.line()
		if err != nil {
			return err
		}
		if i := bytes.IndexByte(l, ';'); i >= 0 {
			l = l[:i]
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(l)), 16, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("%w: chunk size %q", errBadResponse, l)
		}
		if n == 0 {
			// Trailers, then the empty line.
			for {
				t, err := c.line()
				if err != nil {
					return err
				}
				if len(t) == 0 {
					return nil
				}
			}
		}
		if err := c.readN(body, n); err != nil {
			return err
		}
		if t, err := c.line(); err != nil || len(t) != 0 {
			return fmt.Errorf("%w: no CRLF after a chunk", errBadResponse)
		}
	}
}

// readN appends exactly n bytes of the response to body.
func (c *rawConn) readN(body *bytes.Buffer, n int64) error {
	body.Grow(int(n))
	b := body.AvailableBuffer()[:n]
	if _, err := io.ReadFull(c.br, b); err != nil {
		return err
	}
	body.Write(b) // b is body's own free space: this only extends its length
	return nil
}
