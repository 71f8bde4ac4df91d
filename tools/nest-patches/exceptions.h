// Stand-in for NEST's exceptions.h: block_vector.h needs only nest::NotImplemented.
#include <stdexcept>
#include <string>
namespace nest
{
struct NotImplemented : std::runtime_error
{
  explicit NotImplemented( const std::string& what )
    : std::runtime_error( what )
  {
  }
};
}
