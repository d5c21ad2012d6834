/* Unit tests for hf_stratum_conn: stratum URL parsing and connection failures that need no
 * server (refused port, TLS to a plain listener is covered by the integration suite). */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hf_stratum_conn.h"

Test(stratum_conn, url_schemes)
{
	hf_stratum_url u;
	hf_errbuf eb;

	cr_assert_eq(hf_stratum_url_parse("stratum+tcp://pool.example:3333", &u, &eb), 0);
	cr_assert_str_eq(u.host, "pool.example");
	cr_assert_eq(u.port, 3333);
	cr_assert_not(u.tls);
	cr_assert_eq(hf_stratum_url_parse("stratum+ssl://pool.example:443", &u, &eb), 0);
	cr_assert(u.tls);
	cr_assert_eq(hf_stratum_url_parse("stratum+tls://[::1]:3334/", &u, &eb), 0);
	cr_assert(u.tls);
	cr_assert_str_eq(u.host, "::1");
	cr_assert_eq(u.port, 3334);
	cr_assert_eq(hf_stratum_url_parse("127.0.0.1:3333", &u, &eb), 0);
	cr_assert_not(u.tls);
}

Test(stratum_conn, url_refused)
{
	hf_stratum_url u;
	hf_errbuf eb;
	static const char *bad[] = {
		"http://pool:80", "stratum+tcp://pool", "stratum+tcp://pool:0",
		"stratum+tcp://pool:65536", "stratum+tcp://:3333", "stratum+udp://pool:3333", "",
	};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cr_assert_eq(hf_stratum_url_parse(bad[i], &u, &eb), HF_EINVAL, "%s", bad[i]);
		cr_assert(eb.msg[0]);
	}
	cr_assert_eq(hf_stratum_url_parse(NULL, &u, &eb), HF_EINVAL);
}

Test(stratum_conn, refused_connect_reports_the_peer)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	hf_stratum_url u = { .tls = false };
	hf_stratum_conn *c = NULL;
	hf_errbuf eb;

	/* Bind a port and close it again: nobody listens there now. */
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	strcpy(u.host, "127.0.0.1");
	u.port = ntohs(sa.sin_port);
	cr_assert_eq(hf_stratum_conn_connect(&u, NULL, 2000, &c, &eb), HF_ENET);
	cr_assert_null(c);
	cr_assert(strstr(eb.msg, "127.0.0.1"), "%s", eb.msg);
	hf_stratum_conn_free(NULL);
}
