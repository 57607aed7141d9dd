//! The HTTP/1.x the health probe speaks (RFC 9112): the request line of a request that came
//! in one TCP segment, and the short, closing response the appliance sends back.
//!
//! Only the request line is read: a probe is answered by its method and path, so the header
//! fields that follow are never looked at (nor need to be complete). The response says
//! `Connection: close` and goes out with the FIN: the appliance keeps no state between
//! segments.

use super::Error;

/// The request methods the probe tells apart (RFC 9110 section 9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`: answered with a status and a body.
    Get,
    /// `HEAD`: the same status, without the body (RFC 9110 section 9.3.2).
    Head,
    /// Any other token: answered 405.
    Other,
}

/// A request line (RFC 9112 section 3): `method SP request-target SP HTTP-version CRLF`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Request<'a> {
    /// The method.
    pub method: Method,
    /// The request target as sent (origin form: `/path?query`).
    pub target: &'a [u8],
    /// The minor version of HTTP/1.
    pub minor: u8,
}

/// The statuses the appliance answers with (RFC 9110 section 15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// 200: the probe's path, and the appliance takes new flows.
    Ok,
    /// 400: no complete, well-formed request line in the segment.
    BadRequest,
    /// 404: another path than the probe's.
    NotFound,
    /// 405: a method other than GET or HEAD.
    MethodNotAllowed,
    /// 503: the probe's path, but the appliance is draining.
    ServiceUnavailable,
    /// 505: an HTTP major version other than 1.
    VersionNotSupported,
}

impl Status {
    /// The status code.
    pub const fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::ServiceUnavailable => 503,
            Status::VersionNotSupported => 505,
        }
    }

    /// The status line, code and reason phrase, with its CRLF.
    const fn line(self) -> &'static [u8] {
        match self {
            Status::Ok => b"HTTP/1.1 200 OK\r\n",
            Status::BadRequest => b"HTTP/1.1 400 Bad Request\r\n",
            Status::NotFound => b"HTTP/1.1 404 Not Found\r\n",
            Status::MethodNotAllowed => b"HTTP/1.1 405 Method Not Allowed\r\n",
            Status::ServiceUnavailable => b"HTTP/1.1 503 Service Unavailable\r\n",
            Status::VersionNotSupported => b"HTTP/1.1 505 HTTP Version Not Supported\r\n",
        }
    }

    /// The body: one word or two and a newline, for a person reading `curl` output.
    const fn body(self) -> &'static [u8] {
        match self {
            Status::Ok => b"serving\n",
            Status::BadRequest => b"bad request\n",
            Status::NotFound => b"not found\n",
            Status::MethodNotAllowed => b"method not allowed\n",
            Status::ServiceUnavailable => b"draining\n",
            Status::VersionNotSupported => b"HTTP/1 only\n",
        }
    }
}

/// Characters of a method token (RFC 9110 section 5.6.2, `tchar`).
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

impl<'a> Request<'a> {
    /// Reads the request line at the start of `data` (the segment's payload). Empty lines
    /// before it are skipped and a bare LF ends a line (RFC 9112 section 2.2).
    ///
    /// # Errors
    /// [`Status::BadRequest`] when the segment holds no complete line or the line is not
    /// `method SP target SP HTTP/d.d`; [`Status::VersionNotSupported`] for a major version
    /// other than 1.
    pub fn parse(data: &'a [u8]) -> Result<Request<'a>, Status> {
        let mut rest = data;
        while let [b'\r', b'\n', tail @ ..] | [b'\n', tail @ ..] = rest {
            rest = tail;
        }
        let end = rest
            .iter()
            .position(|&c| c == b'\n')
            .ok_or(Status::BadRequest)?;
        let line = rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]);
        let mut parts = line.split(|&c| c == b' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Status::BadRequest);
        };
        if method.is_empty() || !method.iter().all(|&c| is_tchar(c)) {
            return Err(Status::BadRequest);
        }
        if target.is_empty() || target.iter().any(|&c| c <= b' ' || c == 0x7f) {
            return Err(Status::BadRequest);
        }
        let &[b'H', b'T', b'T', b'P', b'/', major, b'.', minor] = version else {
            return Err(Status::BadRequest);
        };
        if !major.is_ascii_digit() || !minor.is_ascii_digit() {
            return Err(Status::BadRequest);
        }
        if major != b'1' {
            return Err(Status::VersionNotSupported);
        }
        let method = match method {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            _ => Method::Other,
        };
        Ok(Request {
            method,
            target,
            minor: minor - b'0',
        })
    }

    /// The target's path: what comes before its query (`?`).
    pub fn path(&self) -> &'a [u8] {
        let end = self
            .target
            .iter()
            .position(|&c| c == b'?')
            .unwrap_or(self.target.len());
        &self.target[..end]
    }
}

/// The appliance's answer to a probe: a status line, the header fields a load balancer or
/// `curl` needs, and a short text body (left out for HEAD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Response {
    /// The status.
    pub status: Status,
    /// Answering HEAD: the header fields say what GET would get, no body follows.
    pub head_only: bool,
}

/// Header fields after the status line and before `Content-Length`.
const FIELDS: &[u8] =
    b"Content-Type: text/plain\r\nCache-Control: no-store\r\nConnection: close\r\n";
/// The field RFC 9110 section 15.5.6 asks of a 405.
const ALLOW: &[u8] = b"Allow: GET, HEAD\r\n";
/// The length field's name; its value follows.
const CONTENT_LENGTH: &[u8] = b"Content-Length: ";

impl Response {
    /// The longest response: what a buffer for any of them needs.
    pub const MAX_LEN: usize = 192;

    /// Bytes [`Response::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        let len = self.body().len();
        self.status.line().len()
            + FIELDS.len()
            + self.allow().len()
            + CONTENT_LENGTH.len()
            + decimal(self.status.body().len(), &mut [0; 20])
            + b"\r\n\r\n".len()
            + len
    }

    fn body(&self) -> &'static [u8] {
        if self.head_only {
            b""
        } else {
            self.status.body()
        }
    }

    fn allow(&self) -> &'static [u8] {
        if self.status == Status::MethodNotAllowed {
            ALLOW
        } else {
            b""
        }
    }

    /// Writes the response at the start of `buf`; returns its length.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        if buf.len() < self.buffer_len() {
            return Err(Error::BufferTooSmall);
        }
        let mut digits = [0u8; 20];
        let n = decimal(self.status.body().len(), &mut digits);
        let mut at = 0;
        for piece in [
            self.status.line(),
            FIELDS,
            self.allow(),
            CONTENT_LENGTH,
            &digits[20 - n..],
            b"\r\n\r\n",
            self.body(),
        ] {
            buf[at..at + piece.len()].copy_from_slice(piece);
            at += piece.len();
        }
        Ok(at)
    }
}

/// Writes `n` in decimal at the end of `out`; returns how many digits.
fn decimal(mut n: usize, out: &mut [u8; 20]) -> usize {
    let mut i = out.len();
    loop {
        i -= 1;
        out[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return out.len() - i;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_request_line() {
        // curl's request, headers and all, in one segment.
        let seg = b"GET /healthz HTTP/1.1\r\nHost: 192.0.2.2\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";
        let r = Request::parse(seg).unwrap();
        assert_eq!(
            r,
            Request {
                method: Method::Get,
                target: b"/healthz",
                minor: 1
            }
        );
        assert_eq!(r.path(), b"/healthz");
        // HTTP/1.0 with a query, after an empty line, ended by a bare LF.
        let r = Request::parse(b"\r\n\nHEAD /healthz?from=lb HTTP/1.0\n").unwrap();
        assert_eq!(
            (r.method, r.path(), r.minor),
            (Method::Head, &b"/healthz"[..], 0)
        );
        let r = Request::parse(b"POST / HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(r.method, Method::Other);
    }

    #[test]
    fn malformed_request_lines_are_bad_requests() {
        for seg in [
            &b""[..],
            b"GET /healthz HTTP/1.1",        // no end of line in the segment
            b"GET /healthz\r\n",             // HTTP/0.9
            b"GET  /healthz HTTP/1.1\r\n",   // two spaces
            b"GET /healthz HTTP/1.1 x\r\n",  // a fourth part
            b"G(T /healthz HTTP/1.1\r\n",    // not a token
            b"GET /a\x01b HTTP/1.1\r\n",     // a control character in the target
            b"GET /healthz HTTPS/1.1\r\n",   // not HTTP
            b"GET /healthz HTTP/1.x\r\n",    // not a digit
            b"GET /healthz HTTP/11\r\n",     // no dot
            b"\x16\x03\x01\x02\x00\x01\x00", // a TLS client hello
        ] {
            assert_eq!(Request::parse(seg), Err(Status::BadRequest), "{seg:?}");
        }
        assert_eq!(
            Request::parse(b"GET / HTTP/2.0\r\n"),
            Err(Status::VersionNotSupported)
        );
    }

    #[test]
    fn responses_say_their_length_and_close() {
        let mut buf = [0u8; Response::MAX_LEN];
        let ok = Response {
            status: Status::Ok,
            head_only: false,
        };
        let n = ok.emit(&mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            &b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: no-store\r\n\
               Connection: close\r\nContent-Length: 8\r\n\r\nserving\n"[..]
        );
        let head = Response {
            head_only: true,
            ..ok
        };
        let h = head.emit(&mut buf).unwrap();
        assert_eq!(h, n - b"serving\n".len(), "the same fields, no body");
        assert!(buf[..h].ends_with(b"Content-Length: 8\r\n\r\n"));
        for status in [
            Status::Ok,
            Status::BadRequest,
            Status::NotFound,
            Status::MethodNotAllowed,
            Status::ServiceUnavailable,
            Status::VersionNotSupported,
        ] {
            let r = Response {
                status,
                head_only: false,
            };
            let n = r.emit(&mut buf).unwrap();
            assert!(n <= Response::MAX_LEN);
            let text = std::str::from_utf8(&buf[..n]).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with(&format!("HTTP/1.1 {} ", status.code())));
            assert!(
                head.contains(&format!("\r\nContent-Length: {}", body.len())),
                "{text}"
            );
            assert!(head.contains("\r\nConnection: close"));
            assert_eq!(
                head.contains("\r\nAllow: GET, HEAD"),
                status == Status::MethodNotAllowed
            );
            assert_eq!(r.emit(&mut buf[..n - 1]), Err(Error::BufferTooSmall));
        }
    }

    #[test]
    fn decimal_numbers() {
        let mut out = [0u8; 20];
        for (n, text) in [
            (0, "0"),
            (9, "9"),
            (10, "10"),
            (160, "160"),
            (usize::MAX, "18446744073709551615"),
        ] {
            let len = decimal(n, &mut out);
            assert_eq!(&out[20 - len..], text.as_bytes());
        }
    }
}
