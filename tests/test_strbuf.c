/* tools/strbuf.c: the growable string and the UTF-8 checks `nibble serve` relies on (a stream
 * never splits a character; ill-formed bytes never reach JSON; request bodies are checked). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"
#include "testutil.h"

static void test_add(void **state)
{
    (void)state;
    struct strbuf b = {0};
    for (int i = 0; i < 1000; i++)
        sb_printf(&b, "%d,", i);
    assert_false(b.oom);
    assert_int_equal(b.n, strlen(b.s));
    assert_memory_equal(b.s, "0,1,2,", 6);
    sb_cut(&b, 4);
    assert_string_equal(b.s, "0,1,");
    sb_add(&b, "x\0y", 3); /* NUL bytes are kept */
    assert_int_equal(b.n, 7);
    sb_free(&b);
    assert_null(b.s);
}

static void test_valid(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        bool ok;
    } cases[] = {
        {"plain", true},         {"\xC3\xA9", true},         {"\xE2\x82\xAC", true},
        {"\xF0\x9F\x98\x80", true}, {"\xF4\x8F\xBF\xBF", true}, {"\xC3", false},
        {"\xC0\xAF", false},     /* overlong */               {"\xE0\x80\xAF", false},
        {"\xED\xA0\x80", false}, /* surrogate */              {"\xF4\x90\x80\x80", false},
        {"\xFF", false},         {"\x80", false},            {"a\xE2\x82", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(utf8_valid(cases[i].s, strlen(cases[i].s)), cases[i].ok);
}

static void test_complete(void **state)
{
    (void)state;
    const char *s = "a\xE2\x82\xAC"; /* a, euro sign */
    assert_int_equal(utf8_complete(s, 4), 4);
    assert_int_equal(utf8_complete(s, 3), 1); /* the euro's first two bytes wait */
    assert_int_equal(utf8_complete(s, 2), 1);
    assert_int_equal(utf8_complete(s, 1), 1);
    assert_int_equal(utf8_complete("\xF0\x9F\x98", 3), 0);
    assert_int_equal(utf8_complete("ab\xFF", 3), 3);        /* broken: nothing to wait for */
    assert_int_equal(utf8_complete("ab\xE2\x41", 4), 4);    /* broken sequence */
    assert_int_equal(utf8_complete("", 0), 0);
}

static void test_sanitize(void **state)
{
    (void)state;
    struct strbuf b = {0};
    sb_add_utf8(&b, "a\xFF" "b\xE2\x82" "c\xE2\x82\xAC", 9);
    assert_string_equal(b.s, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD" "c\xE2\x82\xAC");
    assert_true(utf8_valid(b.s, b.n));
    sb_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_complete),
        cmocka_unit_test(test_sanitize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
