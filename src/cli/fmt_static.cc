// fmt's out-of-line functions, compiled into the light `aec` binary from the <fmt/format-inl.h>
// that Debian's libfmt-dev installs, so that binary needs no libfmt.so (which would bring the
// shared C++ runtime back with it) at start: see AEC_LIGHT_STATIC in src/cli/CMakeLists.txt.
// The templates below are the ones the binary's calls leave undefined; the linker names any new
// one (an undefined fmt::v9 symbol) when a change starts to need it.
#include <fmt/format-inl.h>

FMT_BEGIN_NAMESPACE
namespace detail {

template FMT_API auto dragonbox::to_decimal(float x) noexcept -> dragonbox::decimal_fp<float>;
template FMT_API auto dragonbox::to_decimal(double x) noexcept -> dragonbox::decimal_fp<double>;
template FMT_API locale_ref::locale_ref(const std::locale& loc);
template FMT_API auto locale_ref::get<std::locale>() const -> std::locale;
template FMT_API auto thousands_sep_impl(locale_ref) -> thousands_sep_result<char>;
template FMT_API auto decimal_point_impl(locale_ref) -> char;
template FMT_API void buffer<char>::append(const char*, const char*);

}  // namespace detail
FMT_END_NAMESPACE
