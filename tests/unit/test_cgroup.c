/* cgroup helpers that need no root: mountinfo parsing, relative paths, pid lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"

static const char hybrid[] =
	"22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
	"30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
	"31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
	"34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
	"39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
	"40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

static const char unified[] =
	"24 1 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw\n"
	"25 24 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
	"rw,nsdelegate,memory_recursiveprot\n"
	"90 25 0:23 / /mnt/second rw shared:4 - cgroup2 cgroup2 rw\n";

static void test_hybrid(void **state)
{
	char buf[PATH_MAX];

	assert_int_equal(cgroup_parse_mountinfo(hybrid, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/sys/fs/cgroup/unified");
}

static void test_unified_first_wins(void **state)
{
	char buf[PATH_MAX];

	assert_int_equal(cgroup_parse_mountinfo(unified, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/sys/fs/cgroup");
}

static void test_escapes(void **state)
{
	static const char text[] =
		"50 1 0:40 / /cgroup2 rw - tmpfs tmpfs rw\n"   /* the name alone is not enough */
		"51 1 0:41 / /mnt/my\\040cg\\134x\\011y rw,relatime shared:9 master:3 - cgroup2 none rw";
	char buf[PATH_MAX];

	assert_int_equal(cgroup_parse_mountinfo(text, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/mnt/my cg\\x\ty");
}

static void test_none(void **state)
{
	char buf[16] = "untouched";

	assert_int_equal(cgroup_parse_mountinfo("", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(cgroup_parse_mountinfo(hybrid + 0, buf, 8), -ENAMETOOLONG);
	assert_string_equal(buf, "untouched");
	/* hybrid without its last line: only v1 hierarchies */
	{
		char *v1 = strndup(hybrid, (size_t)(strstr(hybrid, "40 30") - hybrid));

		assert_non_null(v1);
		assert_int_equal(cgroup_parse_mountinfo(v1, buf, sizeof(buf)), -ENOENT);
		free(v1);
	}
	assert_int_equal(cgroup_parse_mountinfo("garbage\n\n1 2\n", buf, sizeof(buf)), -ENOENT);
}

static void test_find_mount_live(void **state)
{
	char buf[PATH_MAX];
	int r = cgroup_find_mount(buf, sizeof(buf));

	/* Whatever the machine has, the answer must be consistent. */
	assert_true(r == 0 || r == -ENOENT);
	if (r == 0)
		assert_int_equal(buf[0], '/');
}

static void test_create_and_pids(void **state)
{
	char dir[] = "/tmp/netext-cgtest-XXXXXX", path[PATH_MAX];
	pid_t pids[4];
	size_t n = 99;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(cgroup_create(dir, "a/b//c"), 0);
	assert_int_equal(cgroup_create(dir, "/a/b/c"), 0);
	snprintf(path, sizeof(path), "%s/a/b/c", dir);
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(cgroup_create(dir, "a/../x"), -EINVAL);
	assert_int_equal(cgroup_remove(dir, ""), -EINVAL);
	assert_int_equal(cgroup_remove(dir, "a/./b"), -EINVAL);

	snprintf(path, sizeof(path), "%s/a/cgroup.procs", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("12\n345\n6\n", f);
	fclose(f);
	assert_int_equal(cgroup_pids(dir, "a", pids, 4, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(pids[1], 345);
	n = 99;
	assert_int_equal(cgroup_pids(dir, "a", pids, 2, &n), -ENOBUFS);
	assert_int_equal(n, 99);

	unlink(path);
	snprintf(path, sizeof(path), "%s/a/b/c", dir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/a/b", dir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/a", dir);
	rmdir(path);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hybrid),
		cmocka_unit_test(test_unified_first_wins),
		cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_none),
		cmocka_unit_test(test_find_mount_live),
		cmocka_unit_test(test_create_and_pids),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
